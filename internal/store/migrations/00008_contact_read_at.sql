-- Kommo is the source of truth: every contact version the store applies was
-- read from Kommo's API, and read_at is when that read began, in microseconds
-- on this database's clock (the one clock every process shares). The version
-- read later wins; Kommo's updated_at (seconds, Kommo's clock) no longer
-- orders versions. Rows written before this migration count as read at 0:
-- any read replaces them.

-- +goose Up
ALTER TABLE contact_state ADD COLUMN read_at BIGINT NOT NULL DEFAULT 0 AFTER updated_at;

-- +goose Down
ALTER TABLE contact_state DROP COLUMN read_at;
