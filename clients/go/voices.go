package chattts

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// VoicesService is the server's voice library (Client.Voices). Calls that change it
// (Create, Update, Delete, Import) are retried only when the server surely did nothing.
type VoicesService struct{ c *Client }

// VoiceDefaults are parameters a saved voice applies when a request does not set them.
type VoiceDefaults struct {
	Speed       *float64 `json:"speed,omitempty"`
	Temperature *float64 `json:"temperature,omitempty"`
	TopP        *float64 `json:"top_p,omitempty"`
	TopK        *int     `json:"top_k,omitempty"`
	RefineText  *bool    `json:"refine_text,omitempty"`
}

// Voice is a usable voice: a built-in name or a saved voice.
type Voice struct {
	ID               string        `json:"id"`
	Kind             string        `json:"kind"` // builtin, seed, spk_emb, ref_audio
	Seed             *int64        `json:"seed"`
	Description      *string       `json:"description"`
	Language         *string       `json:"language"`
	Defaults         VoiceDefaults `json:"defaults"`
	ModelFingerprint *string       `json:"model_fingerprint"`
	CreatedAt        *float64      `json:"created_at"` // Unix seconds
}

// VoiceCreate saves a named voice made from exactly one of Seed, SpkEmb (a speaker
// string) or RefAudio (a WAV, FLAC or Ogg clip of 0.5–30 s) with its transcript RefText.
type VoiceCreate struct {
	Name        string         `json:"name"`
	Seed        *int64         `json:"seed,omitempty"`
	SpkEmb      string         `json:"spk_emb,omitempty"`
	RefAudio    []byte         `json:"ref_audio,omitempty"`
	RefText     string         `json:"ref_text,omitempty"`
	Description string         `json:"description,omitempty"`
	Language    string         `json:"language,omitempty"` // zh or en
	Defaults    *VoiceDefaults `json:"defaults,omitempty"`
}

// VoicePatch changes what a voice says about itself (its sound never changes): a nil
// field stays as it is; the fields named in Clear are set to null.
type VoicePatch struct {
	Description *string
	Language    *string
	Defaults    *VoiceDefaults
	Clear       []string // "description", "language", "defaults"
}

// MarshalJSON sends only the fields that change.
func (p VoicePatch) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	for _, k := range p.Clear {
		switch k {
		case "description", "language", "defaults":
			m[k] = nil
		default:
			return nil, fmt.Errorf("chattts: a voice's %s cannot be cleared", k)
		}
	}
	if p.Description != nil {
		m["description"] = *p.Description
	}
	if p.Language != nil {
		m["language"] = *p.Language
	}
	if p.Defaults != nil {
		m["defaults"] = p.Defaults
	}
	return json.Marshal(m)
}

// SampleOptions choose a voice sample: Format (default wav), Text (at most 200
// characters; default a greeting), Lang (zh or en).
type SampleOptions struct {
	Format string
	Text   string
	Lang   string
}

// ExportDocument is every saved voice as one portable JSON document.
type ExportDocument struct {
	Format  string            `json:"format"`  // "chattts-server-voices"
	Version int               `json:"version"` // 1
	Voices  []json.RawMessage `json:"voices"`
}

// ImportResult names the voices written and those skipped (they existed).
type ImportResult struct {
	Imported []string `json:"imported"`
	Skipped  []string `json:"skipped"`
}

// voicePath is /v1/voices/{name} with the name escaped, dots too (".." must reach the
// server as a name, never become a step up the path).
func voicePath(name string) (string, error) {
	if name == "" {
		return "", &ValidationError{"name", "invalid_voice_name", "a voice name cannot be empty"}
	}
	return "/v1/voices/" + strings.ReplaceAll(url.PathEscape(name), ".", "%2E"), nil
}

func (v *VoicesService) spec(op, method, path string, body any, idempotent bool, opts []CallOption) (*spec, error) {
	s := &spec{op: op, method: method, path: path, idempotent: idempotent, guarded: true, retries: true, opts: opts}
	if body != nil {
		b, err := jsonBody(body)
		if err != nil {
			return nil, err
		}
		s.body = b
	}
	return s, nil
}

// voicesJSON runs a call of the voice library (as VoicesService.spec builds it) whose JSON
// answer is a T.
func voicesJSON[T any](ctx context.Context, v *VoicesService, op, method, path string, body any, idempotent bool, opts []CallOption) (*T, error) {
	s, err := v.spec(op, method, path, body, idempotent, opts)
	if err != nil {
		return nil, err
	}
	var out T
	if err := v.c.doJSON(ctx, s, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// List returns the voices usable as TTSRequest.Voice: the built-in OpenAI names, then the
// saved voices ("seed:N" works too).
func (v *VoicesService) List(ctx context.Context, opts ...CallOption) ([]Voice, error) {
	out, err := voicesJSON[struct {
		Data []Voice `json:"data"`
	}](ctx, v, "voices.list", http.MethodGet, "/v1/voices", nil, true, opts)
	if err != nil {
		return nil, err
	}
	return out.Data, nil
}

// Get returns the voice called name (404 voice_not_found as an *APIError).
func (v *VoicesService) Get(ctx context.Context, name string, opts ...CallOption) (*Voice, error) {
	path, err := voicePath(name)
	if err != nil {
		return nil, err
	}
	return voicesJSON[Voice](ctx, v, "voices.get", http.MethodGet, path, nil, true, opts)
}

// Create saves a voice (409 voice_exists when the name is taken).
func (v *VoicesService) Create(ctx context.Context, req *VoiceCreate, opts ...CallOption) (*Voice, error) {
	if req == nil {
		return nil, &ValidationError{"name", "missing_field", "the request is nil"}
	}
	if v.c.validate {
		if err := CheckVoiceName(req.Name); err != nil {
			return nil, err
		}
	}
	return voicesJSON[Voice](ctx, v, "voices.create", http.MethodPost, "/v1/voices", req, false, opts)
}

// Update changes a voice's description, language or defaults and returns it as it now is.
func (v *VoicesService) Update(ctx context.Context, name string, patch VoicePatch, opts ...CallOption) (*Voice, error) {
	path, err := voicePath(name)
	if err != nil {
		return nil, err
	}
	return voicesJSON[Voice](ctx, v, "voices.update", http.MethodPatch, path, patch, false, opts)
}

// Delete deletes a saved voice.
func (v *VoicesService) Delete(ctx context.Context, name string, opts ...CallOption) error {
	path, err := voicePath(name)
	if err != nil {
		return err
	}
	s, _ := v.spec("voices.delete", http.MethodDelete, path, nil, false, opts)
	return v.c.doJSON(ctx, s, nil)
}

// Sample returns a short preview of the voice, the same every time.
func (v *VoicesService) Sample(ctx context.Context, name string, sample SampleOptions, opts ...CallOption) (*Audio, error) {
	path, err := voicePath(name)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	if sample.Format != "" {
		q.Set("format", sample.Format)
	}
	if sample.Text != "" {
		q.Set("text", sample.Text)
	}
	if sample.Lang != "" {
		q.Set("lang", sample.Lang)
	}
	if len(q) > 0 {
		path += "/sample?" + q.Encode()
	} else {
		path += "/sample"
	}
	s, _ := v.spec("voices.sample", http.MethodGet, path, nil, true, opts)
	s.text = sample.Text
	return v.c.audioCall(ctx, s, false)
}

// Export returns every saved voice as one document, for Import on any server.
func (v *VoicesService) Export(ctx context.Context, opts ...CallOption) (*ExportDocument, error) {
	return voicesJSON[ExportDocument](ctx, v, "voices.export", http.MethodGet, "/v1/voices/export", nil, true, opts)
}

// check: doJSON refuses an answer that is not an export document (a malformed answer).
func (d *ExportDocument) check() error {
	if d.Format != "chattts-server-voices" || d.Voices == nil {
		return fmt.Errorf("the answer is not a voice export document")
	}
	return nil
}

// Import imports an Export document, all or nothing; names that exist are skipped, or
// replaced with overwrite.
func (v *VoicesService) Import(ctx context.Context, doc *ExportDocument, overwrite bool, opts ...CallOption) (*ImportResult, error) {
	if doc == nil {
		return nil, &ValidationError{"voices", "missing_field", "the document is nil"}
	}
	path := "/v1/voices/import?overwrite=false"
	if overwrite {
		path = "/v1/voices/import?overwrite=true"
	}
	return voicesJSON[ImportResult](ctx, v, "voices.import", http.MethodPost, path, doc, false, opts)
}
