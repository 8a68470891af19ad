// Command chattts speaks to a chattts-server: synthesis to a file (whole or streamed) and
// the voice library.
//
//	chattts say TEXT|- -o FILE [--url URL] [--stream] [--voice V] [--seed N] [--manual-seed N]
//	            [--format F] [--lang L] [--speed X] [--retries N] [--timeout DUR]
//	            [--fallback FILE] [--api-key K] [--ca F --cert F --key F] [-v]
//	chattts voices list [--json]
//	chattts voices create NAME (--seed N | --spk-emb S | --ref-audio FILE --ref-text T)
//	            [--description D] [--language zh|en]
//	chattts voices delete NAME
//
// --url defaults to $CHATTTS_SERVER_URL, else http://localhost:9700; --api-key to
// $CHATTTS_SERVER_API_KEY. Exit status: 0 on success (also when the fallback audio was
// written, with a warning), 1 when the call failed (the server's status, code and request
// id are printed), 2 for usage errors.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	chattts "github.com/chattts-server/chattts-server/clients/go"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

const usage = `usage:
  chattts say TEXT|- -o FILE [--url URL] [--stream] [--voice V] [--seed N] [--manual-seed N]
              [--format F] [--lang L] [--speed X] [--retries N] [--timeout DUR]
              [--fallback FILE] [--api-key K] [--ca F --cert F --key F] [-v]
  chattts voices list [--json]
  chattts voices create NAME (--seed N | --spk-emb S | --ref-audio FILE --ref-text T)
              [--description D] [--language zh|en]
  chattts voices delete NAME
`

// usageError is a command line that does not parse (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// run is the whole command, for tests: exit status out.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	err := dispatch(ctx, args, stdin, stdout, stderr, getenv)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "error: %s\n%s", ue.msg, usage)
		return 2
	}
	fmt.Fprintf(stderr, "error: %s\n", describe(err))
	return 1
}

// describe says what failed in the server's terms: status, code, param, request id.
func describe(err error) string {
	var api *chattts.APIError
	if errors.As(err, &api) {
		parts := []string{}
		if api.StatusCode != 0 {
			parts = append(parts, fmt.Sprintf("status=%d", api.StatusCode))
		}
		for _, kv := range [][2]string{{"code", api.Code}, {"param", api.Param}, {"request_id", api.RequestID}} {
			if kv[1] != "" {
				parts = append(parts, kv[0]+"="+kv[1])
			}
		}
		msg := api.Message
		if errors.Is(err, chattts.ErrStreamInterrupted) {
			msg = "the stream broke after audio arrived: " + msg
		}
		return fmt.Sprintf("%s (%s)", msg, strings.Join(parts, ", "))
	}
	return strings.TrimPrefix(err.Error(), "chattts: ")
}

func dispatch(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return usageError{"a command is needed"}
	}
	switch args[0] {
	case "say":
		return say(ctx, args[1:], stdin, stdout, stderr, getenv)
	case "voices":
		if len(args) < 2 {
			return usageError{"voices needs list, create or delete"}
		}
		switch args[1] {
		case "list":
			return voicesList(ctx, args[2:], stdout, stderr, getenv)
		case "create":
			return voicesCreate(ctx, args[2:], stdout, stderr, getenv)
		case "delete":
			return voicesDelete(ctx, args[2:], stdout, stderr, getenv)
		}
		return usageError{"unknown voices command " + strconv.Quote(args[1])}
	case "-h", "--help", "help":
		return flag.ErrHelp
	}
	return usageError{"unknown command " + strconv.Quote(args[0])}
}

// common are the connection flags of every command.
type common struct {
	url, apiKey, ca, cert, key, fallback string
	retries                              int
	timeout                              string
	verbose                              bool
}

func (c *common) register(fs *flag.FlagSet, getenv func(string) string) {
	url := getenv("CHATTTS_SERVER_URL")
	if url == "" {
		url = chattts.DefaultURL
	}
	fs.StringVar(&c.url, "url", url, "the server")
	fs.StringVar(&c.apiKey, "api-key", getenv("CHATTTS_SERVER_API_KEY"), "API key (Bearer)")
	fs.StringVar(&c.ca, "ca", "", "CA bundle (PEM) to verify the server with")
	fs.StringVar(&c.cert, "cert", "", "client certificate (PEM) for mTLS")
	fs.StringVar(&c.key, "key", "", "the client certificate's key (PEM)")
	fs.IntVar(&c.retries, "retries", 2, "retries on 429/502/503/504, connection errors and timeouts")
	fs.StringVar(&c.timeout, "timeout", "", "deadline of the call, retries included (e.g. 60s, 2m, or seconds)")
	fs.BoolVar(&c.verbose, "v", false, "log each call (slog) to stderr")
}

func (c *common) client(stderr io.Writer) (*chattts.Client, error) {
	opts := []chattts.Option{chattts.WithRetries(c.retries)}
	if c.verbose {
		opts = append(opts, chattts.WithLogger(slog.New(slog.NewTextHandler(stderr, nil))))
	} else {
		opts = append(opts, chattts.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	}
	if c.apiKey != "" {
		opts = append(opts, chattts.WithAPIKey(c.apiKey))
	}
	if c.ca != "" || c.cert != "" || c.key != "" {
		opts = append(opts, chattts.WithTLSFiles(c.ca, c.cert, c.key))
	}
	if c.timeout != "" {
		d, err := parseDuration(c.timeout)
		if err != nil {
			return nil, usageError{"--timeout: " + err.Error()}
		}
		opts = append(opts, chattts.WithTimeout(d))
		if d < 120*time.Second {
			opts = append(opts, chattts.WithReadTimeout(d))
		}
	}
	if c.fallback != "" {
		opts = append(opts, chattts.WithFallbackFile(c.fallback))
	}
	if c.retries < 0 {
		return nil, usageError{"--retries must be >= 0"}
	}
	return chattts.New(c.url, opts...)
}

func parseDuration(s string) (time.Duration, error) {
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		if secs <= 0 {
			return 0, fmt.Errorf("must be positive")
		}
		return time.Duration(secs * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err == nil && d <= 0 {
		err = fmt.Errorf("must be positive")
	}
	return d, err
}

// parse reads flags anywhere among the positional arguments ("say TEXT -o FILE").
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// optInt is an integer flag that may be absent.
type optInt struct{ v *int64 }

func (o *optInt) String() string {
	if o.v == nil {
		return ""
	}
	return strconv.FormatInt(*o.v, 10)
}

func (o *optInt) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("not an integer: %q", s)
	}
	o.v = &n
	return nil
}

type optFloat struct{ v *float64 }

func (o *optFloat) String() string {
	if o.v == nil {
		return ""
	}
	return strconv.FormatFloat(*o.v, 'g', -1, 64)
}

func (o *optFloat) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("not a number: %q", s)
	}
	o.v = &f
	return nil
}

func say(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("say", flag.ContinueOnError)
	var c common
	c.register(fs, getenv)
	var out, voice, format, lang string
	var stream bool
	var seed, manualSeed optInt
	var speed optFloat
	fs.StringVar(&out, "o", "", "output file (- for stdout)")
	fs.StringVar(&voice, "voice", "", "voice: alloy…, seed:N, or a saved voice")
	fs.Var(&seed, "seed", "voice seed")
	fs.Var(&manualSeed, "manual-seed", "sampling seed (same seed, same audio)")
	fs.StringVar(&format, "format", "", "wav (default), pcm, mp3, opus, flac, aac")
	fs.StringVar(&lang, "lang", "", "language (BCP-47: zh, zh-CN, en, en-US, …)")
	fs.Var(&speed, "speed", "0.5–2.0")
	fs.BoolVar(&stream, "stream", false, "stream: write audio as it is made, progress on stderr")
	fs.StringVar(&c.fallback, "fallback", "", "audio file to write when the server cannot answer")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"say takes one TEXT (or - for stdin)"}
	}
	if out == "" {
		return usageError{"-o FILE is required"}
	}
	text := pos[0]
	if text == "-" {
		data, err := io.ReadAll(stdin)
		if err != nil {
			return err
		}
		text = string(data)
	}
	req := &chattts.TTSRequest{Text: text, Voice: voice, Seed: seed.v, ManualSeed: manualSeed.v,
		Format: format, Lang: lang, Speed: speed.v}
	if err := req.Validate(); err != nil {
		return usageError{err.Error()}
	}
	client, err := c.client(stderr)
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			return err
		}
		return usageError{err.Error()}
	}
	w, commit, abort, err := output(out, stdout)
	if err != nil {
		return err
	}
	if err := synthesize(ctx, client, req, stream, w, stderr); err != nil && !errors.Is(err, chattts.ErrFallbackUsed) {
		abort()
		return err
	} else if err != nil {
		fmt.Fprintf(stderr, "warning: the server could not answer (%s); wrote the fallback audio\n", describe(errors.Unwrap(err)))
	}
	return commit()
}

// output opens the target: a file removed again if the call fails, or stdout.
func output(path string, stdout io.Writer) (w io.Writer, commit func() error, abort func(), err error) {
	if path == "-" {
		return stdout, func() error { return nil }, func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, nil, err
	}
	return f, f.Close, func() { f.Close(); os.Remove(path) }, nil
}

func synthesize(ctx context.Context, client *chattts.Client, req *chattts.TTSRequest, stream bool, w io.Writer, stderr io.Writer) error {
	if !stream {
		audio, err := client.Synthesize(ctx, req)
		if audio != nil {
			if _, werr := w.Write(audio.Data); werr != nil {
				return werr
			}
		}
		return err
	}
	if req.Format != "" && req.Format != "wav" && req.Format != "pcm" {
		audio, err := client.StreamAudio(ctx, req) // encoded by the server as it goes
		if audio == nil {
			return err
		}
		defer audio.Close()
		if _, cerr := io.Copy(w, audio); cerr != nil {
			return cerr
		}
		return err
	}
	s, err := client.Stream(ctx, req)
	if err != nil {
		audio, ferr := client.FallbackFor(ctx, err)
		if audio != nil {
			if _, werr := w.Write(audio.Data); werr != nil {
				return werr
			}
		}
		return ferr
	}
	defer s.Close()
	var wav *chattts.WAVWriter
	for s.Next() {
		switch e := s.Event().(type) {
		case *chattts.AudioChunk:
			if req.Format == "pcm" {
				if _, err := w.Write(e.PCM); err != nil {
					return err
				}
				continue
			}
			if wav == nil {
				wav = chattts.NewWAVWriter(w, e.SampleRate)
			}
			if _, err := wav.Write(e.PCM); err != nil {
				return err
			}
		case *chattts.Progress:
			fmt.Fprintf(stderr, "\r%d/%d sentences, %.1f s of audio", e.SentencesDone, e.SentencesTotal, float64(e.AudioMS)/1000)
		case *chattts.Done:
			fmt.Fprintf(stderr, "\rdone: %.1f s of audio in %.1f s (request %s)\n", float64(e.AudioDurationMS)/1000,
				float64(e.ElapsedMS)/1000, e.RequestID)
		}
	}
	if err := s.Err(); err != nil {
		return err
	}
	if req.Format != "pcm" {
		if wav == nil {
			wav = chattts.NewWAVWriter(w, 24000)
		}
		return wav.Close()
	}
	return nil
}

func clientFrom(fs *flag.FlagSet, c *common, args []string, stderr io.Writer) ([]string, *chattts.Client, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return nil, nil, err
	}
	client, err := c.client(stderr)
	if err != nil {
		var ue usageError
		if !errors.As(err, &ue) {
			err = usageError{err.Error()}
		}
		return nil, nil, err
	}
	return pos, client, nil
}

func voicesList(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("voices list", flag.ContinueOnError)
	var c common
	c.register(fs, getenv)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, client, err := clientFrom(fs, &c, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError{"voices list takes no arguments"}
	}
	voices, err := client.Voices.List(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(voices)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSEED\tLANGUAGE\tDESCRIPTION")
	for _, v := range voices {
		seed := ""
		if v.Seed != nil {
			seed = strconv.FormatInt(*v.Seed, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.ID, v.Kind, seed, deref(v.Language), deref(v.Description))
	}
	return tw.Flush()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func voicesCreate(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("voices create", flag.ContinueOnError)
	var c common
	c.register(fs, getenv)
	var seed optInt
	var spkEmb, refAudio, refText, description, language string
	fs.Var(&seed, "seed", "make the voice from a seed")
	fs.StringVar(&spkEmb, "spk-emb", "", "make the voice from a ChatTTS speaker string")
	fs.StringVar(&refAudio, "ref-audio", "", "make the voice from a reference clip (WAV/FLAC/Ogg, 0.5–30 s)")
	fs.StringVar(&refText, "ref-text", "", "the reference clip's transcript")
	fs.StringVar(&description, "description", "", "what the voice is")
	fs.StringVar(&language, "language", "", "zh or en")
	pos, client, err := clientFrom(fs, &c, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"voices create takes one NAME"}
	}
	sources := 0
	for _, set := range []bool{seed.v != nil, spkEmb != "", refAudio != ""} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return usageError{"give exactly one of --seed, --spk-emb, --ref-audio"}
	}
	if (refAudio != "") != (refText != "") {
		return usageError{"--ref-audio and --ref-text go together"}
	}
	req := &chattts.VoiceCreate{Name: pos[0], Seed: seed.v, SpkEmb: spkEmb, RefText: refText,
		Description: description, Language: language}
	if refAudio != "" {
		if req.RefAudio, err = os.ReadFile(refAudio); err != nil {
			return err
		}
	}
	v, err := client.Voices.Create(ctx, req)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created %s (%s)\n", v.ID, v.Kind)
	return nil
}

func voicesDelete(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("voices delete", flag.ContinueOnError)
	var c common
	c.register(fs, getenv)
	pos, client, err := clientFrom(fs, &c, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"voices delete takes one NAME"}
	}
	if err := client.Voices.Delete(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "deleted %s\n", pos[0])
	return nil
}
