package chattts

import (
	"context"
	"encoding/json"
	"net/http"
)

// Health is a server's /healthz or /readyz answer.
type Health struct {
	Status string         `json:"status"` // ok, ready, loading, ...
	Model  map[string]any `json:"model"`  // device, sample_rate, fingerprint, ... (readyz)
	// Ready: /readyz answered 200 (the model is loaded and warmed).
	Ready    bool   `json:"-"`
	Endpoint string `json:"-"`
}

// Health asks whether the server process is alive (GET /healthz). Like Ready it bypasses
// the breakers and retries, and moves on to the next endpoint only when one cannot be
// reached.
func (c *Client) Health(ctx context.Context, opts ...CallOption) (*Health, error) {
	return c.health(ctx, "/healthz", opts)
}

// Ready asks whether the server can synthesize (GET /readyz): a 503 while the model
// loads is an answer (Ready false), not an error.
func (c *Client) Ready(ctx context.Context, opts ...CallOption) (*Health, error) {
	return c.health(ctx, "/readyz", opts)
}

func (c *Client) health(ctx context.Context, path string, opts []CallOption) (*Health, error) {
	s := &spec{op: "health", method: http.MethodGet, path: path, idempotent: true,
		answers: func(code int) bool { return code == http.StatusServiceUnavailable }, opts: opts}
	var h Health
	_, err := c.wholeCall(ctx, s, c.maxJSON, false, func(a *attempt, data []byte) (int64, error) {
		if err := json.Unmarshal(data, &h); err != nil || h.Status == "" {
			if a.resp.StatusCode != http.StatusOK {
				return -1, a.cl.statusError(a.ep, a.resp, data)
			}
			return -1, &ProtocolError{Msg: "malformed health status", RequestID: a.requestID()}
		}
		h.Ready, h.Endpoint = a.resp.StatusCode == http.StatusOK, a.ep.display
		return -1, nil
	})
	if err != nil {
		return nil, err
	}
	return &h, nil
}
