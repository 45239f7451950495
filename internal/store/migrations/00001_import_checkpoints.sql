-- Initial-import progress, one row per tenant (issue #4). A restarted
-- manager resumes from next_url instead of starting over.
-- tenant is the UnisenderBinding's "namespace/name": ASCII, at most 317 bytes.

-- +goose Up
CREATE TABLE import_checkpoints (
    tenant       VARCHAR(317) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    run_id       VARCHAR(64)  NOT NULL,
    last_page    INT          NOT NULL DEFAULT 0,
    next_url     TEXT         NULL,
    imported     BIGINT       NOT NULL DEFAULT 0,
    total        BIGINT       NOT NULL DEFAULT 0,
    updated_from BIGINT       NOT NULL DEFAULT 0,
    status       VARCHAR(32)  NOT NULL,
    updated_at   DATETIME(6)  NOT NULL,
    PRIMARY KEY (tenant)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE import_checkpoints;
