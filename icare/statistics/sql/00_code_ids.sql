-- A small integer per classification code (in code order), for the pathways' lists of categories
-- (the care spells' steps made with the timeline, icare/statistics/timeline.py, and 15_pathways.sql):
-- grouping and comparing integers is faster than text.
CREATE TABLE code_ids AS
SELECT *, row_number() OVER (ORDER BY code)::INTEGER AS code_id FROM codes
