package chattts

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strings"
	"unicode/utf8"
)

// SeedMax is the largest voice seed and manual_seed (2³²−1).
const SeedMax = 1<<32 - 1

// Formats the server can encode (the request's Format, a voice sample's format).
var Formats = []string{"wav", "pcm", "mp3", "opus", "flac", "aac"}

// SampleRates the server can resample to (the request's SampleRate).
var SampleRates = []int{8000, 16000, 22050, 24000, 44100, 48000}

// ControlTokens pass through the text to ChatTTS; any other [word] is rejected.
var ControlTokens = []string{"[uv_break]", "[v_break]", "[lbreak]", "[llbreak]", "[laugh]"}

// KnownExtensions are the Extensions keys the server understands; it ignores any other
// key and lists it in the X-Ignored-Fields header (Audio.IgnoredFields).
var KnownExtensions = []string{"max_new_tokens", "min_new_tokens"}

// Ptr returns a pointer to v, for the optional fields: Seed: chattts.Ptr[int64](42).
func Ptr[T any](v T) *T { return &v }

// Pauses are silences inserted after each clause (Comma) and sentence (Period), in
// milliseconds (0–10000), exact to the sample.
type Pauses struct {
	Comma  int `json:"comma"`
	Period int `json:"period"`
}

// TTSRequest is the body of POST /v1/tts: the original description's chapter-3 request,
// typed. Zero values and nil pointers are left out, so the server's defaults (or a saved
// voice's) apply.
//
// At most one voice source: Voice (or its synonym VoiceID: a built-in name such as
// "alloy", "seed:N", or a saved voice), Seed, SpkEmb, or RefAudio with its transcript
// RefText. Without one, the voice is drawn from ManualSeed when given, else at random.
type TTSRequest struct {
	Text string `json:"text"`
	// Lang is a BCP-47 tag, case-insensitive: zh, zh-CN, zh-Hans, zh-TW, cmn, en, en-US,
	// en-GB, ... ChatTTS speaks Chinese and English.
	Lang    string `json:"lang,omitempty"`
	VoiceID string `json:"voice_id,omitempty"`
	Voice   string `json:"voice,omitempty"`
	Seed    *int64 `json:"seed,omitempty"`
	SpkEmb  string `json:"spk_emb,omitempty"`
	// RefAudio is a WAV, FLAC or Ogg clip of 0.5–30 s (sent base64-encoded).
	RefAudio    []byte   `json:"ref_audio,omitempty"`
	RefText     string   `json:"ref_text,omitempty"`
	Speed       *float64 `json:"speed,omitempty"`       // 0.5–2.0, 1 is normal
	Temperature *float64 `json:"temperature,omitempty"` // (0, 2]
	TopP        *float64 `json:"top_p,omitempty"`       // (0, 1]
	TopK        *int     `json:"top_k,omitempty"`       // 1–626
	RefineText  *bool    `json:"refine_text,omitempty"`
	// RefinePrompt holds only [oral_N], [laugh_N] and [break_N] tokens.
	RefinePrompt string  `json:"refine_prompt,omitempty"`
	Pauses       *Pauses `json:"pauses,omitempty"`
	// Format is one of Formats; empty means WAV for Synthesize (Stream always yields PCM).
	Format     string `json:"format,omitempty"`
	SampleRate int    `json:"sample_rate,omitempty"` // one of SampleRates; 0: 24000
	// ManualSeed fixes sampling: the same request and ManualSeed give sample-identical audio.
	ManualSeed *int64 `json:"manual_seed,omitempty"`
	// Extensions are vendor options: max_new_tokens and min_new_tokens (integers) are
	// understood, other keys ignored by the server.
	Extensions map[string]any `json:"extensions,omitempty"`
}

// wireTTS is the body as sent: the request plus the client's stream flag.
type wireTTS struct {
	*TTSRequest
	Stream bool `json:"stream,omitempty"`
}

// The server's patterns (chattts_server.engine.text, .server.protocol), verbatim.
var (
	langTag        = regexp.MustCompile(`^(?:[Zz][Hh]|[Cc][Mm][Nn]|[Ee][Nn])(?:[-_][A-Za-z0-9]{1,8})*$`)
	controlTag     = regexp.MustCompile(`\[[^\[\]\s]{1,32}\]`)
	refinePromptRe = regexp.MustCompile(`^(?:\[(?:oral_[0-9]|laugh_[0-2]|break_[0-7])\]|\s)*$`)
	speakableRe    = regexp.MustCompile(`[A-Za-z0-9\x{4e00}-\x{9fff}]`)
	seedVoiceRe    = regexp.MustCompile(`^seed:(?:0|[1-9][0-9]{0,9})$`)
)

// opusRates are the sample rates libopus runs at (format opus).
var opusRates = []int{8000, 16000, 24000, 48000}

// NormalizeLang maps a BCP-47 tag (case-insensitive; "_" tolerated for POSIX locales) to
// the language ChatTTS speaks: "zh" for zh, zh-*, cmn; "en" for en, en-*. ok is false for
// any other language (the server's rule).
func NormalizeLang(tag string) (lang string, ok bool) {
	if !langTag.MatchString(tag) {
		return "", false
	}
	primary := strings.ToLower(strings.FieldsFunc(tag, func(c rune) bool { return c == '-' || c == '_' })[0])
	if primary == "en" {
		return "en", true
	}
	return "zh", true
}

// Validate checks the request against the server's rules and returns the first problem as
// a *ValidationError (errors.Is(err, ErrInvalidRequest)), with the code and param the
// server would answer. The server stays the authority: rules that depend on its settings
// (text length, reference clip size) or on its state (whether a saved voice exists, what
// text normalisation leaves to speak) are checked there only.
func (r *TTSRequest) Validate() error {
	if r == nil {
		return &ValidationError{"text", "missing_field", "the request is nil"}
	}
	checks := []func() error{
		r.checkNumbers,
		r.checkChoices,
		r.checkVoice,
		func() error { return checkText(r.Text, "text") },
		r.checkRefine,
		r.checkReference,
		r.checkExtensions,
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (r *TTSRequest) checkNumbers() error {
	if err := checkSeed(r.Seed, "seed"); err != nil {
		return err
	}
	if err := checkFloat(r.Speed, "speed", 0.5, 2.0, true); err != nil {
		return err
	}
	if err := checkFloat(r.Temperature, "temperature", 1e-5, 2.0, true); err != nil {
		return err
	}
	if err := checkFloat(r.TopP, "top_p", 1e-5, 1.0, true); err != nil {
		return err
	}
	if r.TopK != nil && (*r.TopK < 1 || *r.TopK > 626) {
		return outOfRange("top_k", "an integer in 1…626")
	}
	if p := r.Pauses; p != nil {
		if p.Comma < 0 || p.Comma > 10000 {
			return outOfRange("pauses.comma", "milliseconds in 0…10000")
		}
		if p.Period < 0 || p.Period > 10000 {
			return outOfRange("pauses.period", "milliseconds in 0…10000")
		}
	}
	return checkSeed(r.ManualSeed, "manual_seed")
}

func (r *TTSRequest) checkChoices() error {
	if r.Format != "" && !contains(Formats, r.Format) {
		return &ValidationError{"format", "invalid_value", "format must be one of " + strings.Join(Formats, ", ")}
	}
	if r.SampleRate != 0 && !contains(SampleRates, r.SampleRate) {
		return &ValidationError{"sample_rate", "invalid_value", fmt.Sprintf("sample_rate must be one of %v", SampleRates)}
	}
	if r.Format == "opus" && r.SampleRate != 0 && !contains(opusRates, r.SampleRate) {
		return &ValidationError{"sample_rate", "unsupported_sample_rate", fmt.Sprintf("opus runs at %v Hz", opusRates)}
	}
	if r.Lang != "" {
		if _, ok := NormalizeLang(r.Lang); !ok {
			return &ValidationError{"lang", "unsupported_language",
				fmt.Sprintf("language %q is not supported; ChatTTS speaks Chinese (zh, zh-CN, zh-Hans, zh-TW, cmn, ...) and English (en, en-US, en-GB, ...)", r.Lang)}
		}
	}
	return nil
}

func (r *TTSRequest) checkVoice() error {
	if r.Voice != "" && r.VoiceID != "" && r.Voice != r.VoiceID {
		return &ValidationError{"voice_id", "conflicting_voice", "voice and voice_id name different voices"}
	}
	var sources []string
	if v := r.voiceName(); v != "" {
		name := "voice"
		if r.Voice == "" {
			name = "voice_id"
		}
		sources = append(sources, name)
		if err := checkVoiceName(v, name); err != nil {
			return err
		}
	}
	if r.Seed != nil {
		sources = append(sources, "seed")
	}
	if r.SpkEmb != "" {
		sources = append(sources, "spk_emb")
	}
	if r.RefAudio != nil {
		sources = append(sources, "ref_audio")
	}
	if len(sources) > 1 {
		return &ValidationError{sources[1], "conflicting_voice", "give one voice source, not " + strings.Join(sources, " and ")}
	}
	return nil
}

func (r *TTSRequest) voiceName() string {
	if r.Voice != "" {
		return r.Voice
	}
	return r.VoiceID
}

func (r *TTSRequest) checkRefine() error {
	if !refinePromptRe.MatchString(r.RefinePrompt) {
		return &ValidationError{"refine_prompt", "invalid_refine_prompt", "refine_prompt may hold only [oral_0-9], [laugh_0-2] and [break_0-7] tokens"}
	}
	return nil
}

func (r *TTSRequest) checkReference() error {
	if r.RefText != "" && r.RefAudio == nil {
		return &ValidationError{"ref_audio", "missing_field", "ref_text needs ref_audio"}
	}
	if r.RefAudio != nil {
		if r.RefText == "" {
			return &ValidationError{"ref_text", "missing_field", "a reference clip needs its transcript in ref_text"}
		}
		return checkText(r.RefText, "ref_text")
	}
	return nil
}

func (r *TTSRequest) checkExtensions() error {
	for i, key := range KnownExtensions {
		v, ok := r.Extensions[key]
		if !ok || v == nil {
			continue
		}
		n, isInt := integer(v)
		if !isInt {
			return &ValidationError{"extensions." + key, "invalid_type", "extensions." + key + " must be an integer"}
		}
		if lo := int64(1 - i); n < lo { // max_new_tokens >= 1, min_new_tokens >= 0
			return outOfRange("extensions."+key, fmt.Sprintf("an integer >= %d", lo))
		}
	}
	if r.Extensions != nil {
		if _, err := json.Marshal(r.Extensions); err != nil {
			return &ValidationError{"extensions", "invalid_type", "extensions must be JSON: " + err.Error()}
		}
	}
	return nil
}

// checkText mirrors the server's text rules, in its order (the length limit is a server
// setting and is left to it).
func checkText(text, param string) error {
	if !utf8.ValidString(text) {
		return &ValidationError{param, "invalid_text", param + " is not valid UTF-8"}
	}
	for _, c := range text {
		if isControl(c) {
			return &ValidationError{param, "invalid_characters", param + " holds control characters (only tab and newlines are allowed)"}
		}
	}
	stripped := strings.TrimSpace(text)
	if stripped == "" {
		return &ValidationError{param, "empty_text", param + " is empty"}
	}
	if strings.TrimSpace(controlTag.ReplaceAllString(stripped, "")) == "" {
		return &ValidationError{param, "empty_text", param + " holds only control tokens"}
	}
	for _, tag := range controlTag.FindAllString(stripped, -1) {
		if !contains(ControlTokens, tag) {
			return &ValidationError{param, "unknown_control_token",
				fmt.Sprintf("unknown control token %s; allowed: %s", tag, strings.Join(ControlTokens, ", "))}
		}
	}
	if !speakableRe.MatchString(controlTag.ReplaceAllString(stripped, "")) {
		return &ValidationError{param, "nothing_to_speak", param + " has nothing ChatTTS can speak: it reads Chinese, English and digits"}
	}
	return nil
}

// isControl: the characters the server refuses in text (C0 but tab, LF, CR; DEL; C1).
func isControl(c rune) bool {
	return (c <= 0x1f && c != '\t' && c != '\n' && c != '\r') || (c >= 0x7f && c <= 0x9f)
}

var voiceNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// checkVoiceName: "seed:N" must carry a seed in range, written without leading zeros (a
// 400 otherwise); any other name is the server's to resolve (404 when unknown).
func checkVoiceName(v, param string) error {
	if strings.HasPrefix(v, "seed:") && (!seedVoiceRe.MatchString(v) || parseUint(v[5:]) > SeedMax) {
		return &ValidationError{param, "invalid_value", fmt.Sprintf("seed voices are seed:N with N in 0…%d", uint64(SeedMax))}
	}
	return nil
}

// CheckVoiceName validates a saved voice's name: ^[A-Za-z0-9_-]{1,64}$.
func CheckVoiceName(name string) error {
	if !voiceNameRe.MatchString(name) {
		return &ValidationError{"name", "invalid_voice_name", "voice names are 1–64 letters, digits, - and _"}
	}
	return nil
}

func parseUint(s string) uint64 {
	var n uint64
	for _, c := range s {
		n = n*10 + uint64(c-'0')
	}
	return n
}

func checkSeed(v *int64, param string) error {
	if v != nil && (*v < 0 || *v > SeedMax) {
		return outOfRange(param, fmt.Sprintf("an integer in 0…%d", uint64(SeedMax)))
	}
	return nil
}

// checkFloat: lo is inclusive when loIncl, hi always inclusive; NaN and ±Inf fail.
func checkFloat(v *float64, param string, lo, hi float64, loIncl bool) error {
	if v == nil {
		return nil
	}
	x := *v
	bad := math.IsNaN(x) || x > hi || x < lo || (!loIncl && x == lo)
	if bad {
		open := "("
		if loIncl {
			open = "["
		}
		return outOfRange(param, fmt.Sprintf("a number in %s%g, %g]", open, lo, hi))
	}
	return nil
}

func outOfRange(param, want string) error {
	return &ValidationError{param, "out_of_range", param + " must be " + want}
}

// integer reports whether v is a Go integer, or an integral float (JSON numbers decoded
// into any), as the server would read it; booleans are not integers.
func integer(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint:
		return int64(x), true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		return int64(x), x <= math.MaxInt64
	case float64:
		return int64(x), x == math.Trunc(x) && math.Abs(x) < 1<<53
	case float32:
		return int64(x), float64(x) == math.Trunc(float64(x)) && math.Abs(float64(x)) < 1<<24
	case json.Number:
		n, err := x.Int64()
		return n, err == nil
	}
	return 0, false
}

func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
