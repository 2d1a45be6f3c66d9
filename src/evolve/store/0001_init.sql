-- yolo-lab's PostgreSQL store, schema version 1 (issue 17). Applied once per database by the migration runner,
-- which records it in yolo_lab_schema; later versions are new files, never edits of this one.

CREATE TABLE IF NOT EXISTS yolo_lab_schema (
    version     integer PRIMARY KEY,
    applied     timestamptz NOT NULL DEFAULT now()
);

-- one evolution: what a file store keeps in opt.yaml, objectives.txt and genes.txt
CREATE TABLE experiments (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    algorithm   text NOT NULL CHECK (algorithm IN ('classic', 'population')),
    population  integer CHECK (population IS NULL OR population > 0),
    generations integer NOT NULL CHECK (generations > 0),
    fitness     double precision[] NOT NULL,
    objectives  text[] NOT NULL DEFAULT ARRAY['fitness'],
    hyp_keys    text[] NOT NULL,             -- YOLOv5's column order of evolve.csv
    base        jsonb NOT NULL,              -- the base scenario (RunSettings) and the search space
    created     timestamptz NOT NULL DEFAULT now()
);

-- one training: claimed as row_no (the claim number, which seeds its mutation), and once finished an evolve.csv
-- row (seq: its place in evolve.csv, in the order trainings finished) with its generations.csv line
CREATE TABLE trials (
    experiment  bigint NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    row_no      integer NOT NULL CHECK (row_no >= 0),
    seq         integer CHECK (seq >= 0),
    generation  integer NOT NULL CHECK (generation >= 0),
    label       text NOT NULL,               -- generations.csv's generation: '7', or '2.5' in a population
    state       text NOT NULL CHECK (state IN ('running', 'complete', 'failed', 'pruned')),
    parents     integer[] NOT NULL DEFAULT '{}', -- the finished rows (seq) its parents were chosen from
    hyp         jsonb NOT NULL,              -- gene name -> value
    hyp_values  double precision[] NOT NULL, -- in experiments.hyp_keys order
    results     double precision[],          -- P, R, mAP@0.5, mAP@0.5:0.95, val box, obj, cls
    fitness     double precision,
    measured    jsonb,                       -- generations.csv's params, images_per_s, peak_mem_mib, latency_ms cells
    worker      text NOT NULL,
    host        text NOT NULL,
    device      text NOT NULL DEFAULT '',
    seed        bigint NOT NULL,
    repeat_of   integer,                     -- the seq this trial re-evaluates
    pruned_at   integer,
    epochs      integer,
    wall_s      double precision,
    train_s     double precision,
    note        text NOT NULL DEFAULT '',
    claimed     timestamptz NOT NULL DEFAULT now(),
    heartbeat   timestamptz NOT NULL DEFAULT now(),
    finished    timestamptz,
    PRIMARY KEY (experiment, row_no),
    UNIQUE (experiment, seq),
    CHECK ((state = 'running') = (results IS NULL)),
    CHECK ((state = 'running') = (seq IS NULL))
);

-- parents are chosen from complete rows; stale claims are found by heartbeat
CREATE INDEX trials_finished ON trials (experiment, seq) WHERE state <> 'running';
CREATE INDEX trials_running ON trials (experiment, heartbeat) WHERE state = 'running';

INSERT INTO yolo_lab_schema (version) VALUES (1);
