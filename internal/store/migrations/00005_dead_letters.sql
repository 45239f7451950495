-- Jobs buried as permanent failures or poison, with the reason (issue #5).
-- tenant is empty when the job could not even be decoded. The unique key
-- makes recording the same buried job twice (a worker that crashed between
-- recording and burying) update one row instead of adding another.

-- +goose Up
CREATE TABLE dead_letters (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    tenant          VARCHAR(317) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
    tube            VARCHAR(200) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    job_id          BIGINT UNSIGNED NOT NULL,
    body_sha256     BINARY(32)   NOT NULL,
    body            MEDIUMBLOB   NOT NULL,
    reason          TEXT         NOT NULL,
    attempts        INT          NOT NULL DEFAULT 0,
    first_failed_at DATETIME(6)  NOT NULL,
    buried_at       DATETIME(6)  NOT NULL,
    requeued_at     DATETIME(6)  NULL,
    requeued_job_id BIGINT UNSIGNED NULL,
    PRIMARY KEY (id),
    UNIQUE KEY dead_letters_job (tube, job_id, body_sha256),
    KEY dead_letters_by_tenant (tenant, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE dead_letters;
