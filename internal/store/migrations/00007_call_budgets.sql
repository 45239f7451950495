-- Call budgets shared by every worker replica: one row per budget (an API
-- key's subscribe calls, named by a digest of the key, never the key),
-- holding the time (ms on the database's clock) from which its next call
-- may be made. A call is taken by moving that time one interval on, in one
-- conditional UPDATE, so replicas never take the same slot.

-- +goose Up
CREATE TABLE call_budgets (
    bucket     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    next_at_ms BIGINT      NOT NULL,
    PRIMARY KEY (bucket)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE call_budgets;
