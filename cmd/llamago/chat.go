package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ergochat/readline"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/llamago/llamago/chat"
	"github.com/llamago/llamago/llama"
)

// chatOptions are the flags and streams of "llamago chat".
type chatOptions struct {
	IO *iostreams

	// Gen holds the model, context and sampling flags, registered and
	// checked as run's (Model, NPredict, ..., Stop, IgnoreEOS, NoEscape).
	Gen runOptions

	System         string
	ChatTemplate   string // a built-in template's name, or a file of Jinja source
	ShowThinking   bool
	File           string // --file: messages one a line ("-": standard input)
	Timings        bool
	NoContextShift bool

	// Set by validate: the built-in template of --chat-template, or ""
	// when it names a file.
	builtin string
}

const chatLong = `Chat with a model: each message gets a reply, streamed as it is generated,
and the conversation stays in the context, so that only the new message is
evaluated.

On a terminal, chat reads messages with line editing and history. Ctrl-C
stops an answer (the unfinished exchange is dropped from the conversation);
at the prompt it drops the line typed, or on an empty line says how to quit:
Ctrl-D or /exit. Otherwise (standard input not a terminal, or --file) it
reads one message a line, prints the replies, and exits at the end of the
input, so scripts can drive it; there, commands print only what they show
(/help, /stats, /system), and any error ends the run.

A line ending with \ continues on the next one; a message between """ lines
may span several. A line starting with / is a command (// for a message that
starts with /):

` + chatCommandHelp + `
The template that formats the conversation is the model's own, else chatml;
--chat-template names one of llama.cpp's built-in templates or a file of
Jinja source. A reasoning model's thinking is hidden unless --show-thinking.
When the conversation outgrows the context, the oldest exchanges are dropped
(--no-context-shift makes that an error instead).`

const chatCommandHelp = `  /help            show the commands
  /clear           forget the conversation, keeping the system prompt
  /system [TEXT]   set the system prompt (without TEXT, show it)
  /save FILE       save the conversation, with its KV cache, to FILE
  /load FILE       restore a conversation saved with /save
  /stats           show the statistics of the last reply and the totals
  /image FILE      attach an image to the next message (needs --mmproj)
  /exit            quit (also /bye, or Ctrl-D)
`

func newChatCmd(streams *iostreams, runF func(*chatOptions) error) *cobra.Command {
	opts := &chatOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "chat -m MODEL [flags]",
		Short: "Chat with a model, interactively or through a pipe",
		Long:  chatLong,
		Example: `  llamago chat -m model.gguf
  llamago chat -m model.gguf --system "You are terse." --temp 0.7 -c 8192
  printf 'Hi\nTell me a story\n' | llamago chat -m model.gguf --timings
  llamago chat -m stories260K.gguf --chat-template chatml -f questions.txt`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.validate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runChat(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	addModelFlag(f, &opts.Gen)
	f.StringVar(&opts.System, "system", "", "system prompt")
	f.StringVar(&opts.ChatTemplate, "chat-template", "", "chat template: a built-in name (chatml, llama3, ...) or a file of Jinja source (default: the model's, else chatml)")
	f.BoolVar(&opts.ShowThinking, "show-thinking", false, "print a reasoning model's thinking (dimmed on a terminal)")
	f.StringVarP(&opts.File, "file", "f", "", "read the messages from a file, one a line (\"-\": standard input), and exit at its end")
	f.BoolVar(&opts.Gen.NoEscape, "no-escape", false, "do not process escape sequences (\\n, \\t, ...) in --system and the stop strings")
	f.BoolVar(&opts.NoContextShift, "no-context-shift", false, "fail when the conversation outgrows the context, instead of dropping the oldest exchanges")
	addGenerationFlags(f, &opts.Gen)
	addVisionFlags(f, &opts.Gen.Vision, true)
	f.BoolVar(&opts.Timings, "timings", false, "print token counts and speeds on stderr after each reply")
	return cmd
}

// validate checks the flags; a --chat-template that is neither a built-in
// template nor a file is a usage error.
func (o *chatOptions) validate() error {
	if err := o.Gen.validate(); err != nil {
		return err
	}
	if name := o.ChatTemplate; name != "" {
		if slices.Contains(chat.BuiltinNames(), name) {
			o.builtin = name
		} else if st, err := os.Stat(name); err != nil || st.IsDir() {
			return usageErrorf("--chat-template %q is neither a built-in template (%s) nor a file",
				name, strings.Join(chat.BuiltinNames(), ", "))
		}
	}
	return nil
}

// runChat loads the model and chats, on the terminal or through the
// input's lines.
func runChat(ctx context.Context, opts *chatOptions) error {
	errOut := opts.IO.ErrOut

	var tmpl *chat.Template
	var err error
	switch {
	case opts.builtin != "":
		if tmpl, err = chat.Builtin(opts.builtin); err != nil {
			return err
		}
	case opts.ChatTemplate != "":
		src, err := os.ReadFile(opts.ChatTemplate)
		if err != nil {
			return err
		}
		if tmpl, err = chat.ParseTemplate(string(src)); err != nil {
			return fmt.Errorf("--chat-template %s: %w", opts.ChatTemplate, err)
		}
	}
	system := opts.System
	stops := slices.Clone(opts.Gen.Stop)
	if !opts.Gen.NoEscape {
		system = processEscapes(system)
		for i := range stops {
			stops[i] = processEscapes(stops[i])
		}
	}
	grammar, err := opts.Gen.grammarText()
	if err != nil {
		return err
	}
	images, err := loadImages(opts.Gen.Vision.Images)
	if err != nil {
		return err
	}
	var input io.Reader
	interactive := false
	switch {
	case opts.File == "-":
		input = opts.IO.In
	case opts.File != "":
		f, err := os.Open(opts.File)
		if err != nil {
			return err
		}
		defer f.Close()
		input = f
	default:
		input = opts.IO.In
		interactive = isTTY(opts.IO.In) && isTTY(opts.IO.Out)
	}

	modelOpts := opts.Gen.modelOptions()
	if isTTY(errOut) {
		bar := newLoadBar(errOut)
		defer bar.Clear()
		modelOpts = append(modelOpts, llama.WithProgress(func(p float32) bool {
			bar.Set(int(p * 100))
			return true
		}))
	}
	noteCPUFallback(ctx, opts.Gen.GPULayers)
	model, err := loadModel(ctx, opts.Gen.Model, modelOpts...)
	if err != nil {
		return err
	}
	defer model.Close()
	proj, err := opts.Gen.Vision.load(model, opts.Gen.Threads)
	if err != nil {
		return err
	}
	if err := opts.Gen.Spec.load(ctx, opts.Gen.modelOptions()...); err != nil {
		return err
	}
	defer opts.Gen.Spec.close()
	lctx, err := opts.Gen.newContext(model)
	if err != nil {
		return err
	}
	defer lctx.Close()

	if tmpl == nil {
		tmpl, err = chat.FromModel(model)
		if errors.Is(err, chat.ErrNoTemplate) {
			fmt.Fprintf(errOut, "llamago: warning: the model has no chat template; using chatml (see --chat-template)\n")
			tmpl, err = chat.Builtin("chatml")
		}
		if err != nil {
			return fmt.Errorf("%w (choose another with --chat-template)", err)
		}
	}

	sampling := opts.Gen.samplerOptions(grammar)
	sessOpts := []chat.Option{
		chat.WithSystem(system),
		chat.WithSampling(sampling...),
		chat.WithStop(stops...),
	}
	if opts.Gen.Spec.on() {
		sessOpts = append(sessOpts, chat.WithSpeculation(opts.Gen.Spec.speculation()))
	}
	if opts.NoContextShift {
		sessOpts = append(sessOpts, chat.WithContextPolicy(chat.FailWhenFull()))
	} else {
		sessOpts = append(sessOpts, chat.WithContextPolicy(chat.ShiftContext(0)))
	}
	if opts.Gen.NPredict > 0 {
		sessOpts = append(sessOpts, chat.WithMaxTokens(opts.Gen.NPredict))
	}
	if !opts.ShowThinking {
		sessOpts = append(sessOpts, chat.WithHiddenThinking())
	}
	if proj != nil {
		sessOpts = append(sessOpts, chat.WithProjector(proj))
	}
	seq, err := lctx.NewSequence()
	if err != nil {
		return err
	}
	defer seq.Close()
	sess, err := chat.NewSession(seq, tmpl, sessOpts...)
	if err != nil {
		return err
	}

	c := &chatter{
		opts:        opts,
		sess:        sess,
		out:         opts.IO.Out,
		errOut:      errOut,
		interactive: interactive,
		color:       isTTY(opts.IO.Out),
		proj:        proj,
		images:      images,
	}
	if interactive {
		return c.runInteractive(ctx, opts.IO.In.(*os.File))
	}
	return c.runLines(ctx, input)
}

// isTTY reports whether v is a terminal (unlike run's isTerminal, which
// takes /dev/null for one).
func isTTY(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// loadBar is the model load's progress bar on a terminal.
type loadBar struct {
	bar     *progressbar.ProgressBar
	cleared bool
}

func newLoadBar(w io.Writer) *loadBar {
	return &loadBar{bar: progressbar.NewOptions(100,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("loading model"),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(50*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)}
}

func (b *loadBar) Set(percent int) {
	if percent >= 100 {
		b.Clear()
		return
	}
	b.bar.Set(percent)
}

// Clear finishes the bar and removes it from the terminal.
func (b *loadBar) Clear() {
	if !b.cleared {
		b.cleared = true
		b.bar.Finish()
	}
}

// chatter runs the conversation: messages, commands and replies.
type chatter struct {
	opts        *chatOptions
	sess        *chat.Session
	out, errOut io.Writer
	interactive bool
	color       bool // dim the thinking: the output is a terminal

	mu     sync.Mutex
	cancel context.CancelFunc // the answer's, while one is generated

	totals chatTotals

	proj   *llama.Projector // --mmproj, or nil
	images []*llama.Image   // for the next message: --image, /image
}

// chatTotals add up the replies of the session.
type chatTotals struct {
	replies    int
	evaluated  int // prompt tokens decoded
	generated  int
	promptEval time.Duration
	generation time.Duration // from the first token to the last, summed
}

// errQuit ends the conversation (/exit).
var errQuit = errors.New("quit")

// runLines reads messages and commands from r, one a line, and answers
// them. Any error ends the conversation.
func (c *chatter) runLines(ctx context.Context, r io.Reader) error {
	br := bufio.NewReader(r)
	var ml multiline
	for {
		line, err := br.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read input: %w", err)
		}
		eof := err != nil
		if eof && line == "" {
			if text, block, ok := ml.flush(); ok {
				return ignoreQuit(c.handle(ctx, text, block))
			}
			return nil
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if text, block, ok := ml.add(line); ok {
			if err := c.handle(ctx, text, block); err != nil {
				return ignoreQuit(err)
			}
		}
		if eof {
			if text, block, ok := ml.flush(); ok {
				return ignoreQuit(c.handle(ctx, text, block))
			}
			return nil
		}
	}
}

func ignoreQuit(err error) error {
	if errors.Is(err, errQuit) {
		return nil
	}
	return err
}

// runInteractive reads messages with readline on the terminal. Ctrl-C
// stops an answer rather than the program: the command takes SIGINT over
// from mainRun while it reads and answers.
func (c *chatter) runInteractive(ctx context.Context, in *os.File) error {
	lineEmpty := true
	rl, err := readline.NewFromConfig(&readline.Config{
		Prompt:       chatPrompt,
		Stdin:        in,
		Stdout:       c.out,
		Stderr:       c.errOut,
		HistoryLimit: 1000,
		Listener: func(line []rune, pos int, key rune) ([]rune, int, bool) {
			lineEmpty = len(line) == 0
			return nil, 0, false
		},
	})
	if err != nil {
		return err
	}
	defer rl.Close()
	release, _ := catchInterrupt(ctx, c.interrupt)
	defer release()

	fmt.Fprintf(c.out, "Type a message, /help for the commands, Ctrl-D or /exit to quit.\n")
	var ml multiline
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if ml.pending() {
			rl.SetPrompt(chatContinue)
		} else {
			rl.SetPrompt(chatPrompt)
		}
		lineEmpty = true
		line, err := rl.ReadLine()
		switch {
		case errors.Is(err, readline.ErrInterrupt):
			// Ctrl-C at the prompt: drop what was typed; on an empty
			// prompt, say how to quit (as ollama).
			if lineEmpty && !ml.pending() {
				fmt.Fprintln(c.out, "Use Ctrl-D or /exit to quit.")
			}
			ml = multiline{}
			continue
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return err
		}
		text, block, ok := ml.add(line)
		if !ok {
			continue
		}
		err = c.handle(ctx, text, block)
		switch {
		case errors.Is(err, errQuit):
			return nil
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			fmt.Fprintf(c.errOut, "llamago: %s\n", errorLine(err))
		}
	}
}

const (
	chatPrompt   = ">>> "
	chatContinue = "... "
)

// interrupt stops the answer being generated, if any.
func (c *chatter) interrupt() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		c.cancel()
	}
}

// handle runs a command, or sends a message. block reports a message
// between """ lines, which is never a command.
func (c *chatter) handle(ctx context.Context, text string, block bool) error {
	if !block && strings.HasPrefix(text, "/") {
		if !strings.HasPrefix(text, "//") {
			return c.command(text)
		}
		text = text[1:]
	}
	if strings.TrimSpace(text) == "" {
		return nil
	}
	return c.send(ctx, text)
}

// command runs a /command line.
func (c *chatter) command(line string) error {
	name, arg, _ := strings.Cut(line, " ")
	if n, a, ok := strings.Cut(name, "\n"); ok { // "/system\nText" after a continuation
		name, arg = n, a+" "+arg
	}
	arg = strings.TrimSpace(arg)
	switch name {
	case "/help", "/?":
		fmt.Fprint(c.out, "Commands:\n"+chatCommandHelp+
			"\nEnd a line with \\ to continue it, or put a message between \"\"\" lines.\n"+
			"Ctrl-C stops an answer; Ctrl-D quits.\n")
	case "/exit", "/quit", "/bye":
		return errQuit
	case "/clear":
		if err := c.sess.Clear(); err != nil {
			return err
		}
		c.say("Cleared the conversation.")
	case "/system":
		if arg == "" {
			if s := c.sess.System(); s != "" {
				fmt.Fprintln(c.out, s)
			} else {
				c.say("No system prompt.")
			}
			return nil
		}
		if err := c.sess.SetSystem(arg); err != nil {
			return err
		}
		c.say("Set the system prompt.")
	case "/save", "/load":
		if arg == "" {
			return fmt.Errorf("%s needs a file name", name)
		}
		if name == "/save" {
			if err := c.sess.Save(arg); err != nil {
				return err
			}
			c.say("Saved the conversation to " + arg + ".")
			return nil
		}
		if err := c.sess.Load(arg); err != nil {
			return err
		}
		c.say(fmt.Sprintf("Loaded %d messages from %s.", len(c.sess.History()), arg))
	case "/stats":
		c.printStats()
	case "/image":
		if arg == "" {
			return fmt.Errorf("/image needs a file name")
		}
		if c.proj == nil {
			return fmt.Errorf("/image needs the model's vision projector: start chat with --mmproj")
		}
		if len(c.images) >= llama.MaxImagesPerPrompt {
			return fmt.Errorf("at most %d images for one message", llama.MaxImagesPerPrompt)
		}
		im, err := llama.LoadImage(arg, 0)
		if err != nil {
			return unprefixed{err}
		}
		c.images = append(c.images, im)
		c.say(fmt.Sprintf("Attached %s (%dx%d) to the next message.", arg, im.Width(), im.Height()))
	default:
		return fmt.Errorf("unknown command %s (see /help)", name)
	}
	return nil
}

// say acknowledges a command on the terminal; through a pipe, commands
// are silent.
func (c *chatter) say(s string) {
	if c.interactive {
		fmt.Fprintln(c.out, s)
	}
}

// send sends a message and streams the reply.
func (c *chatter) send(ctx context.Context, msg string) error {
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.mu.Lock()
	c.cancel = cancel
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.cancel = nil
		c.mu.Unlock()
	}()

	w := &replyWriter{w: c.out, color: c.color}
	var sendErr error
	for ch, err := range c.sess.SendMessage(actx, chat.Message{Role: "user", Content: msg, Images: c.images}) {
		if err != nil {
			sendErr = err
			break
		}
		if err := w.write(ch.Text, ch.Thinking); err != nil {
			return err
		}
	}
	interrupted := errors.Is(sendErr, context.Canceled) && ctx.Err() == nil
	// On a terminal, Ctrl-C echoed ^C where the reply stopped, even at
	// the start of a line: end that line too.
	w.end(sendErr != nil, interrupted && c.interactive)
	if sendErr != nil {
		if interrupted {
			return nil // Ctrl-C stopped the answer; the exchange is dropped
		}
		if errors.Is(sendErr, llama.ErrContextFull) {
			return fmt.Errorf("%w (see --ctx-size, /clear)", sendErr)
		}
		return sendErr
	}
	if c.interactive {
		fmt.Fprintln(c.out)
	}
	c.images = nil // they went with the message

	st := c.sess.Stats()
	c.totals.replies++
	c.totals.evaluated += st.PromptTokens - st.CachedTokens
	c.totals.generated += st.GeneratedTokens
	c.totals.promptEval += st.PromptEval
	c.totals.generation += st.Generation
	if st.Dropped > 0 {
		fmt.Fprintf(c.errOut, "llamago: the conversation outgrew the context: dropped its %d oldest messages\n", st.Dropped)
	}
	if c.opts.Timings {
		printChatTimings(c.errOut, st)
	}
	return nil
}

// replyWriter streams a reply: thinking dimmed on a terminal, and a
// newline at the end.
type replyWriter struct {
	w        io.Writer
	color    bool
	thinking bool
	last     byte
}

const (
	dim      = "\x1b[2m"
	undim    = "\x1b[22m"
	noReply  = byte(0)
	newlineB = byte('\n')
)

func (r *replyWriter) write(text string, thinking bool) error {
	if text == "" {
		return nil
	}
	var b strings.Builder
	if thinking != r.thinking {
		if r.thinking && r.last != newlineB && r.last != noReply {
			b.WriteByte('\n') // the answer starts on its own line
		}
		if r.color {
			if thinking {
				b.WriteString(dim)
			} else {
				b.WriteString(undim)
			}
		}
		r.thinking = thinking
	}
	b.WriteString(text)
	r.last = text[len(text)-1]
	_, err := io.WriteString(r.w, b.String())
	return err
}

// end closes the reply: normal intensity, and a final newline. A reply
// that failed before any text leaves no line; an empty one, an empty line.
// echoed reports text the terminal wrote after the reply (^C): the line
// is ended whatever the reply's last byte.
func (r *replyWriter) end(failed, echoed bool) {
	s := ""
	if r.thinking && r.color {
		s = undim
	}
	if echoed || r.last != newlineB && !(failed && r.last == noReply) {
		s += "\n"
	}
	io.WriteString(r.w, s)
}

// printChatTimings prints the statistics of a reply, as run's --timings.
func printChatTimings(w io.Writer, s chat.TurnStats) {
	fmt.Fprintf(w, "prompt:     %d tokens evaluated (%d cached), %.2f ms, %.2f tok/s\n",
		s.PromptTokens-s.CachedTokens, s.CachedTokens, ms(s.PromptEval), s.PromptTokensPerSecond())
	if s.Images > 0 {
		fmt.Fprintf(w, "images:     %d, encoded in %.2f ms\n", s.Images, ms(s.ImageEncode))
	}
	fmt.Fprintf(w, "generation: %d tokens, time to first token %.2f ms, %.2f tok/s\n",
		s.GeneratedTokens, ms(s.TimeToFirst), s.TokensPerSecond())
	stop := s.StopReason.String()
	if s.StopReason == llama.StopString {
		stop += fmt.Sprintf(" %q", s.StopString)
	}
	fmt.Fprintf(w, "stop:       %s\n", stop)
	printSpecTimings(w, s.Stats)
}

// printStats prints the last reply's statistics and the totals (/stats).
func (c *chatter) printStats() {
	t := c.totals
	if t.replies == 0 {
		fmt.Fprintln(c.out, "No reply yet.")
		return
	}
	fmt.Fprintln(c.out, "Last reply:")
	var b strings.Builder
	printChatTimings(&b, c.sess.Stats())
	for _, line := range strings.SplitAfter(b.String(), "\n") {
		if line != "" {
			fmt.Fprint(c.out, "  "+line)
		}
	}
	if d := c.sess.Stats().Dropped; d > 0 {
		fmt.Fprintf(c.out, "  dropped:    %d messages to fit the context\n", d)
	}
	tps := func(n int, d time.Duration) float64 {
		if n <= 0 || d <= 0 {
			return 0
		}
		return float64(n) / d.Seconds()
	}
	fmt.Fprintf(c.out, "Session: %s, %s in the conversation\n", plural(t.replies, "reply", "replies"), plural(len(c.sess.History()), "message", "messages"))
	fmt.Fprintf(c.out, "  prompt:     %d tokens evaluated, %.2f ms, %.2f tok/s\n",
		t.evaluated, ms(t.promptEval), tps(t.evaluated, t.promptEval))
	fmt.Fprintf(c.out, "  generation: %d tokens, %.2f ms, %.2f tok/s\n",
		t.generated, ms(t.generation), tps(t.generated-t.replies, t.generation))
}

// multiline assembles messages from input lines: a line ending with \
// continues on the next one, and """ opens and closes a block of lines
// (as ollama's). add returns a message when one is complete; block
// reports one given between """ marks.
type multiline struct {
	lines []string
	block bool // inside """
	cont  bool // after a line ending with \
}

const blockMark = `"""`

func (m *multiline) pending() bool { return m.block || m.cont }

func (m *multiline) add(line string) (text string, block, ok bool) {
	switch {
	case m.block:
		if rest, found := strings.CutSuffix(strings.TrimRight(line, " \t"), blockMark); found {
			if rest != "" {
				m.lines = append(m.lines, rest)
			}
			return m.take(true)
		}
		m.lines = append(m.lines, line)
		return "", false, false
	case !m.cont && strings.HasPrefix(line, blockMark):
		rest := line[len(blockMark):]
		if inner, found := strings.CutSuffix(strings.TrimRight(rest, " \t"), blockMark); found {
			m.lines = append(m.lines, inner)
			return m.take(true)
		}
		m.block = true
		if rest != "" {
			m.lines = append(m.lines, rest)
		}
		return "", false, false
	case strings.HasSuffix(line, `\`):
		m.lines = append(m.lines, strings.TrimSuffix(line, `\`))
		m.cont = true
		return "", false, false
	}
	m.lines = append(m.lines, line)
	return m.take(false)
}

// flush returns what is pending at the end of the input.
func (m *multiline) flush() (text string, block, ok bool) {
	if len(m.lines) == 0 {
		*m = multiline{}
		return "", false, false
	}
	return m.take(m.block)
}

func (m *multiline) take(block bool) (string, bool, bool) {
	text := strings.Join(m.lines, "\n")
	*m = multiline{}
	return text, block, true
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
