-- Keys of events already processed, per tenant, for de-duplication
-- (issue #5). Old rows are pruned by processed_at.

-- +goose Up
CREATE TABLE processed_events (
    tenant       VARCHAR(317) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    event_key    VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    processed_at DATETIME(6)  NOT NULL,
    PRIMARY KEY (tenant, event_key),
    KEY processed_events_by_time (processed_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE processed_events;
