-- The e-mail map: which live contacts of a tenant hold an address (issue #5).
-- Addresses are stored normalised (trimmed, lower-case) and compared
-- byte-for-byte. An address leaves the Unisender list only when no row for
-- it remains in its tenant.

-- +goose Up
CREATE TABLE contact_emails (
    tenant     VARCHAR(317) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    contact_id BIGINT       NOT NULL,
    email      VARCHAR(320) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    PRIMARY KEY (tenant, contact_id, email),
    KEY contact_emails_by_email (tenant, email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE contact_emails;
