-- A tenant holds at most one pooled database per shard, so that two claims racing for the same
-- tenant cannot both take one (the second sees the first's claim and returns it instead).
CREATE UNIQUE INDEX pool_databases_one_claim ON pool_databases (shard, claimed_by)
    WHERE claimed_by IS NOT NULL;
