-- Double opt-in invitations (spec.doubleOptin Invite or InviteUnknown): one
-- row per address a tenant added to its list while inviting. The row is
-- written in the transaction that records the sync, and a drainer in the
-- worker sends the subscribe call later, within the API key's budget.
-- The primary key makes an address invited at most once per tenant,
-- whatever batches are retried or workers race. status: pending (to send;
-- next_attempt_at says when), sent, failed (reason says why; never retried).
-- A pending row whose address left the list, or whose binding stopped
-- inviting, is deleted, so the address counts as new if it comes back.

-- +goose Up
CREATE TABLE invitations (
    tenant          VARCHAR(317) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    email           VARCHAR(320) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    status          VARCHAR(16)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    attempts        INT          NOT NULL DEFAULT 0,
    next_attempt_at DATETIME(6)  NOT NULL,
    reason          VARCHAR(500) NOT NULL DEFAULT '',
    created_at      DATETIME(6)  NOT NULL,
    updated_at      DATETIME(6)  NOT NULL,
    PRIMARY KEY (tenant, email),
    KEY invitations_due (status, next_attempt_at, tenant),
    KEY invitations_by_tenant (tenant, status, next_attempt_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE invitations;
