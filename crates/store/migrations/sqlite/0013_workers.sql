-- The delivery workers alive: each engine stamps its row every few seconds, so a
-- provider's throughput_per_second can be shared between the nodes sending through it.
CREATE TABLE workers (
    owner TEXT PRIMARY KEY,
    seen_at TEXT NOT NULL
);
