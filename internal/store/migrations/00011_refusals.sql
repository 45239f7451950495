-- Records the sync could not bring into the tenant's Unisender list (issue
-- #18): an address Unisender refused row by row in an import (source
-- 'unisender', reason = Unisender's log code: invalid_email, role_address,
-- …) or a contact the sync skipped (source 'skipped', reason no_email or
-- company; email is then ''). A refused address is not a list member: it is
-- never sent in an exclusion or deletion batch. The rows of a contact are
-- replaced each time a commit applies it, so a fixed contact leaves the
-- table; the oldest rows of a tenant are pruned past a bound.

-- +goose Up
CREATE TABLE refusals (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    tenant      VARCHAR(317) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    contact_id  BIGINT       NOT NULL,
    email       VARCHAR(320) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '',
    source      VARCHAR(16)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    reason      VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    message     VARCHAR(500) NOT NULL DEFAULT '',
    recorded_at DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY refusals_contact (tenant, contact_id, email),
    KEY refusals_by_email (tenant, email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE refusals;
