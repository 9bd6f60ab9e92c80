-- The timeline of the children numbered first_child to last_child (child_id). What depends on each
-- child's own episodes only (spells, per-period counts, moves) is made for a range of children
-- at a time (compute.py, CHILD_RANGES): each range needs a fraction of the working memory.
CREATE MACRO child_timeline(first_child, last_child) AS TABLE
SELECT * FROM timeline WHERE child_id BETWEEN first_child AND last_child
