-- What the two-way write-back (issue #17) last wrote to Kommo for each
-- address of a tenant: the outcome Unisender reported (unsubscribed,
-- blocked, unreachable, …; '' once the address is active again and the
-- tag was removed) and when Unisender saw it. An event carrying the same
-- outcome, or an older one, writes nothing: the same event delivered three
-- times is one note.

-- +goose Up
CREATE TABLE writeback_marks (
    tenant     VARCHAR(317) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    email      VARCHAR(320) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    outcome    VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    event_at   DATETIME(6)  NOT NULL,
    written_at DATETIME(6)  NOT NULL,
    PRIMARY KEY (tenant, email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE writeback_marks;
