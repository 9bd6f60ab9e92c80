-- One integer per child (source, area and child key), so that every later window and join works on
-- one small key instead of three strings. Numbered in (source, area_code, child_key) order: the
-- spells are put in their published order by it (compute.py, CHILD_COLUMNS).
CREATE TABLE child_ids AS
SELECT source, area_code, child_key, row_number() OVER (ORDER BY source, area_code, child_key) AS child_id
FROM (SELECT DISTINCT source, area_code, child_key FROM episodes_in)
