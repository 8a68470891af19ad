package chattts

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
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
	cl, err := c.newCall(ctx, s)
	if err != nil {
		return nil, err
	}
	var h Health
	s.handle = func(a *attempt) error {
		data, rerr := readAll(a)
		if rerr != nil {
			return rerr
		}
		if err := json.Unmarshal(data, &h); err != nil || h.Status == "" {
			if a.resp.StatusCode != http.StatusOK {
				return cl.statusError(a.ep, a.resp, data)
			}
			return &ProtocolError{Msg: "malformed health status", RequestID: cl.id}
		}
		h.Ready, h.Endpoint = a.resp.StatusCode == http.StatusOK, a.ep.display
		return nil
	}
	a, err := cl.run()
	if err != nil {
		cl.finish(err, -1, false)
		return nil, err
	}
	a.close()
	cl.finish(nil, -1, false)
	return &h, nil
}

// readAll reads a whole answer, sized by its Content-Length when it gives one.
func readAll(a *attempt) ([]byte, error) {
	if n := a.resp.ContentLength; n > 0 && n <= 1<<30 {
		buf := bytes.NewBuffer(make([]byte, 0, n+1))
		_, err := buf.ReadFrom(a.body)
		return buf.Bytes(), err
	}
	return io.ReadAll(a.body)
}
