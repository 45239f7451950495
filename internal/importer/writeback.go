package importer

import (
	"context"
	"fmt"

	"github.com/kommo-unisender/kommo-unisender/internal/writeback"
)

// pullWriteBack reads the list's statuses from Unisender and writes what
// changed to Kommo (internal/writeback), for a resync of a binding with
// spec.writeBack; the initial import has nothing to catch up on yet.
func (r *run) pullWriteBack(ctx context.Context) error {
	if r.job.WriteBack == nil || r.job.Kind != KindResync {
		return nil
	}
	if _, err := writeback.Pull(ctx, r.im.Store, *r.job.WriteBack, tenantLockWait); err != nil {
		return fmt.Errorf("pulling Unisender's outcomes back into Kommo: %w", err)
	}
	return nil
}
