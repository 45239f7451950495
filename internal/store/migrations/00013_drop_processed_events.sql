-- processed_events (migration 4) kept event keys for de-duplication; since
-- the worker reads every contact a webhook names from Kommo and the later
-- read wins (contact_state.read_at), nothing writes or reads it (issue #19).

-- +goose Up
DROP TABLE processed_events;

-- +goose Down
CREATE TABLE processed_events (
    tenant       VARCHAR(317) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    event_key    VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    processed_at DATETIME(6)  NOT NULL,
    PRIMARY KEY (tenant, event_key),
    KEY processed_events_by_time (processed_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
