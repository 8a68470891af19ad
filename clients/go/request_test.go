package chattts

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestValidateMirrorsTheServersRules(t *testing.T) {
	ok := func() *TTSRequest { return &TTSRequest{Text: "你好。Hello [uv_break] there."} }
	cases := []struct {
		name        string
		edit        func(r *TTSRequest)
		param, code string
	}{
		{"empty", func(r *TTSRequest) { r.Text = " \n\t" }, "text", "empty_text"},
		{"only tokens", func(r *TTSRequest) { r.Text = "[laugh] [uv_break]" }, "text", "empty_text"},
		{"unknown token", func(r *TTSRequest) { r.Text = "hi [shout]" }, "text", "unknown_control_token"},
		{"control char", func(r *TTSRequest) { r.Text = "hi\x07" }, "text", "invalid_characters"},
		{"C1 control", func(r *TTSRequest) { r.Text = "hi\u0085" }, "text", "invalid_characters"},
		{"bad utf-8", func(r *TTSRequest) { r.Text = "hi \xff" }, "text", "invalid_text"},
		{"seed range", func(r *TTSRequest) { r.Seed = Ptr[int64](SeedMax + 1) }, "seed", "out_of_range"},
		{"negative seed", func(r *TTSRequest) { r.Seed = Ptr[int64](-1) }, "seed", "out_of_range"},
		{"manual seed", func(r *TTSRequest) { r.ManualSeed = Ptr[int64](-5) }, "manual_seed", "out_of_range"},
		{"slow", func(r *TTSRequest) { r.Speed = Ptr(0.4) }, "speed", "out_of_range"},
		{"fast", func(r *TTSRequest) { r.Speed = Ptr(2.01) }, "speed", "out_of_range"},
		{"nan speed", func(r *TTSRequest) { r.Speed = Ptr(math.NaN()) }, "speed", "out_of_range"},
		{"zero temperature", func(r *TTSRequest) { r.Temperature = Ptr(0.0) }, "temperature", "out_of_range"},
		{"tiny top_p", func(r *TTSRequest) { r.TopP = Ptr(1e-6) }, "top_p", "out_of_range"},
		{"nothing to speak", func(r *TTSRequest) { r.Text = "🙂 …!" }, "text", "nothing_to_speak"},
		{"opus rate", func(r *TTSRequest) { r.Format, r.SampleRate = "opus", 44100 }, "sample_rate", "unsupported_sample_rate"},
		{"seed voice zeros", func(r *TTSRequest) { r.Voice = "seed:007" }, "voice", "invalid_value"},
		{"min tokens", func(r *TTSRequest) { r.Extensions = map[string]any{"min_new_tokens": -1} }, "extensions.min_new_tokens", "out_of_range"},
		{"max tokens", func(r *TTSRequest) { r.Extensions = map[string]any{"max_new_tokens": 0} }, "extensions.max_new_tokens", "out_of_range"},
		{"top_p", func(r *TTSRequest) { r.TopP = Ptr(1.5) }, "top_p", "out_of_range"},
		{"top_k", func(r *TTSRequest) { r.TopK = Ptr(627) }, "top_k", "out_of_range"},
		{"comma pause", func(r *TTSRequest) { r.Pauses = &Pauses{Comma: 10001} }, "pauses.comma", "out_of_range"},
		{"period pause", func(r *TTSRequest) { r.Pauses = &Pauses{Period: -1} }, "pauses.period", "out_of_range"},
		{"format", func(r *TTSRequest) { r.Format = "ogg" }, "format", "invalid_value"},
		{"sample rate", func(r *TTSRequest) { r.SampleRate = 11025 }, "sample_rate", "invalid_value"},
		{"language", func(r *TTSRequest) { r.Lang = "ja-JP" }, "lang", "unsupported_language"},
		{"not a tag", func(r *TTSRequest) { r.Lang = "zh-" }, "lang", "unsupported_language"},
		{"not english", func(r *TTSRequest) { r.Lang = "english" }, "lang", "unsupported_language"},
		{"voice conflict", func(r *TTSRequest) { r.Voice, r.VoiceID = "alloy", "echo" }, "voice_id", "conflicting_voice"},
		{"two sources", func(r *TTSRequest) { r.VoiceID, r.Seed = "alloy", Ptr[int64](3) }, "seed", "conflicting_voice"},
		{"spk and ref", func(r *TTSRequest) { r.SpkEmb, r.RefAudio, r.RefText = "abc", []byte{1}, "t" }, "ref_audio", "conflicting_voice"},
		{"seed voice", func(r *TTSRequest) { r.Voice = "seed:4294967296" }, "voice", "invalid_value"},
		{"seed voice digits", func(r *TTSRequest) { r.Voice = "seed:12a" }, "voice", "invalid_value"},
		{"ref without text", func(r *TTSRequest) { r.RefAudio = []byte("RIFF") }, "ref_text", "missing_field"},
		{"text without ref", func(r *TTSRequest) { r.RefText = "hello" }, "ref_audio", "missing_field"},
		{"refine prompt", func(r *TTSRequest) { r.RefinePrompt = "[oral_2] be nice" }, "refine_prompt", "invalid_refine_prompt"},
		{"extension type", func(r *TTSRequest) { r.Extensions = map[string]any{"max_new_tokens": "48"} }, "extensions.max_new_tokens", "invalid_type"},
		{"extension bool", func(r *TTSRequest) { r.Extensions = map[string]any{"min_new_tokens": true} }, "extensions.min_new_tokens", "invalid_type"},
		{"extension float", func(r *TTSRequest) { r.Extensions = map[string]any{"max_new_tokens": 4.5} }, "extensions.max_new_tokens", "invalid_type"},
	}
	if err := ok().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		r := ok()
		tc.edit(r)
		err := r.Validate()
		var ve *ValidationError
		if !errors.As(err, &ve) || !errors.Is(err, ErrInvalidRequest) || ve.Param != tc.param || ve.Code != tc.code {
			t.Errorf("%s: got %v, want %s on %s", tc.name, err, tc.code, tc.param)
		}
	}
}

func TestValidateAcceptsWhatTheServerAccepts(t *testing.T) {
	for _, r := range []*TTSRequest{
		{Text: "Hi.", Lang: "zh-CN", VoiceID: "alloy"},
		{Text: "Hi.", Lang: "EN-us", Voice: "alloy", VoiceID: "alloy"},
		{Text: "Hi.", Lang: "cmn", Voice: "seed:4294967295", Speed: Ptr(0.5), Temperature: Ptr(2.0), TopP: Ptr(1.0), TopK: Ptr(1)},
		{Text: "Hi.", Seed: Ptr[int64](0), ManualSeed: Ptr[int64](SeedMax), Pauses: &Pauses{Comma: 10000, Period: 0}},
		{Text: "Hi.", RefAudio: []byte("RIFF"), RefText: "hi", Format: "flac", SampleRate: 48000},
		{Text: "Hi.", RefinePrompt: "[oral_2][laugh_0] [break_6]", Extensions: map[string]any{"max_new_tokens": 48, "min_new_tokens": 2.0, "other": "x"}},
		{Text: "Hi.", SpkEmb: "蘁淰", Voice: ""},
		{Text: "[laugh] 哈哈"},
		{Text: "42", Lang: "zh_CN", Voice: "unknown-but-well-formed", Format: "opus", SampleRate: 48000},
		{Text: "Hi.", Voice: "seed:0", TopP: Ptr(1e-5), Temperature: Ptr(1e-5)},
	} {
		if err := r.Validate(); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
}

func TestNormalizeLang(t *testing.T) {
	for tag, want := range map[string]string{"zh": "zh", "zh-CN": "zh", "ZH-hans": "zh", "zh-TW": "zh", "zh-Hant-HK": "zh",
		"cmn": "zh", "en": "en", "en-US": "en", "en-GB": "en", "EN": "en"} {
		if got, ok := NormalizeLang(tag); !ok || got != want {
			t.Errorf("%s: %q %v", tag, got, ok)
		}
	}
	if got, ok := NormalizeLang("zh_CN"); !ok || got != "zh" {
		t.Error("zh_CN (POSIX) is tolerated by the server")
	}
	for _, tag := range []string{"", "ja", "ja-JP", "fr-FR", "english", "-zh", "zh-", "e", "zh-toolongsubtag", "yue"} {
		if _, ok := NormalizeLang(tag); ok {
			t.Errorf("%q accepted", tag)
		}
	}
}

func TestTheWireBodyLeavesUnsetFieldsOut(t *testing.T) {
	b, err := json.Marshal(wireTTS{TTSRequest: &TTSRequest{Text: "hi", Seed: Ptr[int64](0), Speed: Ptr(1.0),
		Pauses: &Pauses{Comma: 200}, RefAudio: []byte{1, 2, 3}, RefText: "t", Lang: "zh-CN", VoiceID: "alloy"}, Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"text":"hi","lang":"zh-CN","voice_id":"alloy","seed":0,"ref_audio":"AQID","ref_text":"t","speed":1,"pauses":{"comma":200,"period":0},"stream":true}`
	if string(b) != want {
		t.Fatalf("%s\nwant %s", b, want)
	}
}

func TestInvalidRequestsAreNotSent(t *testing.T) {
	srv := newScript(t)
	c, _, _ := testClient(t, []string{srv.srv.URL})
	if _, err := c.Synthesize(context.Background(), &TTSRequest{Text: ""}); !errors.Is(err, ErrInvalidRequest) {
		t.Fatal(err)
	}
	if _, err := c.Stream(context.Background(), &TTSRequest{Text: "x", Lang: "de"}); !errors.Is(err, ErrInvalidRequest) {
		t.Fatal(err)
	}
	if _, err := c.Voices.Create(context.Background(), &VoiceCreate{Name: "a b"}); !errors.Is(err, ErrInvalidRequest) {
		t.Fatal(err)
	}
	if srv.count() != 0 {
		t.Fatal("an invalid request was sent")
	}
	// WithoutValidation: the server decides
	srv.add(apiError(400, "unsupported_language"))
	c2, _, _ := testClient(t, []string{srv.srv.URL}, WithoutValidation())
	var api *APIError
	if _, err := c2.Synthesize(context.Background(), &TTSRequest{Text: "x", Lang: "de"}); !errors.As(err, &api) || srv.count() != 1 {
		t.Fatal(err)
	}
}

func TestErrorStringsNameStatusCodeParamAndRequestID(t *testing.T) {
	e := &APIError{StatusCode: 503, Code: "overloaded", Param: "text", Message: "busy", RequestID: "r1"}
	if s := e.Error(); s != "chattts: HTTP 503: busy (code=overloaded, param=text, request_id=r1)" {
		t.Fatal(s)
	}
	if !e.Retryable() || (&APIError{StatusCode: 400}).Retryable() {
		t.Fatal("retryable")
	}
	for _, err := range []error{&CircuitOpenError{}, &FallbackError{Err: e}, &StreamInterruptedError{Err: e}} {
		if !strings.HasPrefix(err.Error(), "chattts: ") {
			t.Fatal(err)
		}
	}
}
