-- yolo-lab's PostgreSQL store, schema version 2: the population GA's generations. Individual k of generation g
-- is trial row g * population + k (label 'g.k'); a generation's population is stored once, by the first worker
-- that bred it from the finished trials of the one before (breeding is seeded, so every worker breeds the same).

CREATE TABLE populations (
    experiment  bigint NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    generation  integer NOT NULL CHECK (generation >= 0),
    genes       text[] NOT NULL,             -- the population GA's genes, in the order of each individual's values
    individuals jsonb NOT NULL,              -- [[value, ...], ...], one array per individual
    created     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (experiment, generation)
);

INSERT INTO yolo_lab_schema (version) VALUES (2);
