package kommo

import (
	"context"
	"encoding/json"
	"fmt"
)

// Account is the account the client's token belongs to.
type Account struct {
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	Subdomain string `json:"subdomain"`
}

// Account reads GET /api/v4/account. It is also how the account id of a
// long-lived token is learnt.
func (c *Client) Account(ctx context.Context) (*Account, error) {
	rep, err := c.do(ctx, call{method: "GET", ref: "/api/v4/account", auth: true})
	if err != nil {
		return nil, err
	}
	var a Account
	if err := json.Unmarshal(rep.body, &a); err != nil {
		return nil, fmt.Errorf("kommo: GET /api/v4/account: decoding answer: %w", err)
	}
	if a.ID == 0 {
		return nil, fmt.Errorf("kommo: GET /api/v4/account: answer has no account id (HTTP %d)", rep.status)
	}
	return &a, nil
}
