-- The last Kommo state applied per contact (issue #5). updated_at is Kommo's
-- (Unix seconds) and decides last-write-wins; a deleted contact keeps its row
-- as a tombstone (deleted = 1) so that a late, older update cannot bring it
-- back. tags is a JSON array and fields a JSON object, kept as text because
-- MySQL's JSON type and MariaDB's JSON alias behave differently.

-- +goose Up
CREATE TABLE contact_state (
    tenant     VARCHAR(317) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    contact_id BIGINT       NOT NULL,
    updated_at BIGINT       NOT NULL,
    deleted    BOOLEAN      NOT NULL DEFAULT FALSE,
    name       TEXT         NOT NULL,
    phone      TEXT         NOT NULL,
    tags       TEXT         NOT NULL,
    fields     MEDIUMTEXT   NOT NULL,
    synced_at  DATETIME(6)  NOT NULL,
    PRIMARY KEY (tenant, contact_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE contact_state;
