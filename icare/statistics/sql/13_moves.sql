-- Children in care at any time in each period by the number of placement moves they made in it
-- (0, 1, 2, 3 or more), classified by the category of their last episode in the period.
-- docs/statistics.md "Moves".
CREATE TABLE moves AS
-- the ranges of children's counts (13_child_moves.sql), summed
SELECT
    source, area_code, period_start, period_end, icare_code, sex, age_band, moves_in_period,
    sum(children)::BIGINT AS children,
    sum(moves)::BIGINT AS moves
FROM child_moves
GROUP BY ALL
