-- A worker that drops a tenant's webhook jobs because they could not be
-- applied for longer than its bound (the binding was suspended for a day,
-- say) asks for a resync here instead of retrying them forever; workers do
-- not write to Kubernetes. The manager takes the requests and starts the
-- resyncs (and tells the binding's owners with a Warning event).

-- +goose Up
CREATE TABLE resync_requests (
    tenant       VARCHAR(317) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    requested_at DATETIME(6)  NOT NULL,
    dropped_jobs INT          NOT NULL,
    PRIMARY KEY (tenant)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE resync_requests;
