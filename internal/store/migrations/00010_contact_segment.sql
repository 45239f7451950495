-- Segments (issue 16).
--
-- outside_segment is set when the contact, as last read, does not match its
-- binding's spec.selector. Such a contact holds no entry in contact_emails
-- (only matching contacts keep an address in the list), but its row stays,
-- so that it comes back when it matches again and the binding can count
-- matching contacts. Rows written before this migration were all synced, so
-- they are in the segment.
--
-- contact_leads links the leads of each contact as last read, for bindings
-- whose selector looks at leads: a lead webhook names leads, and a lead
-- deleted in Kommo (or moved to another contact) can no longer be read to
-- learn which contacts it belonged to; these links tell.

-- +goose Up
ALTER TABLE contact_state ADD COLUMN outside_segment BOOLEAN NOT NULL DEFAULT FALSE AFTER deleted;
CREATE TABLE contact_leads (
    tenant     VARCHAR(317) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    lead_id    BIGINT       NOT NULL,
    contact_id BIGINT       NOT NULL,
    PRIMARY KEY (tenant, lead_id, contact_id),
    KEY contact_leads_by_contact (tenant, contact_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE contact_leads;
ALTER TABLE contact_state DROP COLUMN outside_segment;
