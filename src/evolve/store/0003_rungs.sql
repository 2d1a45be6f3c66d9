-- yolo-lab's PostgreSQL store, schema version 3: the pruner's rung measurements (what a file store keeps in
-- rungs.csv), shared by every worker so each generation is judged against all the others at that epoch.

CREATE TABLE rungs (
    experiment  bigint NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    label       text NOT NULL,               -- the trial's generations.csv generation
    epoch       integer NOT NULL CHECK (epoch >= 0),
    fitness     double precision NOT NULL,
    recorded    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (experiment, label, epoch)
);

INSERT INTO yolo_lab_schema (version) VALUES (3);
