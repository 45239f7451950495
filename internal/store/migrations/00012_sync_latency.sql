-- How long each applied webhook job took from the webhook server receiving
-- it to the worker applying it (issue #18), for the binding's status
-- (p50/p99 over the last hour). Rows older than an hour are pruned as new
-- ones arrive.

-- +goose Up
CREATE TABLE sync_latency (
    id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    tenant     VARCHAR(317) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    applied_at DATETIME(6)  NOT NULL,
    latency_ms INT UNSIGNED NOT NULL,
    PRIMARY KEY (id),
    KEY sync_latency_by_tenant (tenant, applied_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE sync_latency;
