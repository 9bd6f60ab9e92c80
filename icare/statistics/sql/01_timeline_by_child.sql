-- The timeline of the children numbered first_child to last_child (child_id). The spells are built a
-- range of children at a time (compute.py, SPELL_PARTITIONS): a child's spells depend on its own
-- episodes only, and each range needs a fraction of the working memory of the whole.
CREATE MACRO child_timeline(first_child, last_child) AS TABLE
SELECT * FROM timeline WHERE child_id BETWEEN first_child AND last_child
