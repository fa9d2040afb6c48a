-- 0017: lightweight DELETE (`DELETE FROM ...`, an operator's or a tool's) on the tables 0016 gave a
-- projection: ClickHouse refuses it by default (lightweight_mutation_projection_mode = 'throw');
-- 'rebuild' rewrites the projection with the rows. Erasure's ALTER ... DELETE was not affected.
ALTER TABLE identity_map MODIFY SETTING lightweight_mutation_projection_mode = 'rebuild';

ALTER TABLE audience_membership_changes MODIFY SETTING lightweight_mutation_projection_mode = 'rebuild';
