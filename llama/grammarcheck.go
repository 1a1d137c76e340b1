package llama

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// checkGrammar bounds what llama.cpp's grammar parser and grammar sampler
// would do with a GBNF grammar, before they see it. llama.cpp expands
// repetitions into rules as it parses (an inverted one, {2,1}, made it
// generate rules until memory ran out), recurses on the nesting of groups,
// and advances its parse stacks by a depth-first search over every way
// the rules can begin (exponential for nested optional items, a stack
// overflow for a rule that can begin with itself through a rule that can
// be empty, which its left-recursion check misses). checkGrammar parses
// the grammar as llama.cpp does, counting what the expansion creates, and
// measures that search on the result.
//
// A syntax error is not reported: llama.cpp's parser stops at the same
// point, having expanded no more than was counted here, and gives its own
// message.
func checkGrammar(src, root string) error {
	p := &gbnfParser{src: src, symbols: map[string]int{}}
	if err := p.parse(); err != nil {
		if errors.Is(err, errGBNFSyntax) {
			return nil
		}
		return err
	}
	rootID, ok := p.symbols[root]
	if !ok {
		return nil // llama.cpp says so
	}
	for _, id := range p.symbols {
		if id >= len(p.rules) || p.rules[id] == nil {
			return nil // an undefined rule: llama.cpp says so
		}
	}
	return newGrammarCost(p.rules, p.names()).check(rootID)
}

// Limits on grammars, with wide margins over what JSON Schemas of
// thousands of properties convert to.
const (
	// maxGrammarElements bounds the elements (characters of literals and
	// classes, rule references, alternatives) of the grammar after
	// repetitions are expanded: llama.cpp holds them in 8-byte elements,
	// twice over.
	maxGrammarElements = 1 << 21
	// maxGrammarNesting bounds nested groups, on which llama.cpp's parser
	// recurses.
	maxGrammarNesting = 256
	// maxGrammarChain bounds how many rules can begin one another, on
	// which llama.cpp's stack search recurses.
	maxGrammarChain = 2048
	// maxGrammarWork bounds the steps of one advance of the parse stacks
	// (the depth-first search over the ways rules can begin), the stacks
	// it can leave, and the steps of advancing all of those after a
	// character: each is done for every character of every token sampled.
	maxGrammarWork = 1 << 18
	// gbnfMaxRepetition is llama.cpp's own limit on repetition counts
	// (MAX_REPETITION_THRESHOLD), beyond which its parser refuses them.
	gbnfMaxRepetition = 2000
)

var errGBNFSyntax = errors.New("GBNF syntax error")

// gbnfSym is one position of a rule's alternative: a terminal (a
// character of a literal, a character class, a token, the dot) or a
// reference to rule ref.
type gbnfSym struct {
	ref  int // -1: a terminal
	size int // elements llama.cpp uses for it
}

// gbnfParser parses GBNF as llama-grammar.cpp's llama_grammar_parser
// does, expanding repetitions the same way into generated rules, with the
// same rule ids.
type gbnfParser struct {
	src      string
	pos      int
	symbols  map[string]int
	rules    [][][]gbnfSym // by rule id: alternatives; nil if undefined
	elements int
	nesting  int
}

func (p *gbnfParser) at(i int) byte {
	if i < len(p.src) {
		return p.src[i]
	}
	return 0
}

func (p *gbnfParser) grow(n int) error {
	p.elements += n
	if p.elements > maxGrammarElements {
		return fmt.Errorf("the grammar is too large: more than %d elements once its repetitions are expanded", maxGrammarElements)
	}
	return nil
}

func (p *gbnfParser) symbolID(name string) int {
	if id, ok := p.symbols[name]; ok {
		return id
	}
	id := len(p.symbols)
	p.symbols[name] = id
	return id
}

// generateID is llama.cpp's generate_symbol_id, quirks and all: the new
// name can replace a rule of the grammar's own with that name.
func (p *gbnfParser) generateID(base string) int {
	id := len(p.symbols)
	p.symbols[base+"_"+strconv.Itoa(id)] = id
	return id
}

func (p *gbnfParser) addRule(id int, alts [][]gbnfSym) error {
	n := len(alts)
	for _, a := range alts {
		for _, s := range a {
			n += s.size
		}
	}
	if err := p.grow(n); err != nil {
		return err
	}
	for len(p.rules) <= id {
		p.rules = append(p.rules, nil)
	}
	p.rules[id] = alts
	return nil
}

func (p *gbnfParser) names() []string {
	names := make([]string, len(p.rules))
	for name, id := range p.symbols {
		if id < len(names) {
			names[id] = name
		}
	}
	return names
}

func (p *gbnfParser) space(newlineOK bool) {
	for {
		switch c := p.at(p.pos); {
		case c == '#':
			for p.pos < len(p.src) && p.src[p.pos] != '\r' && p.src[p.pos] != '\n' {
				p.pos++
			}
		case c == ' ' || c == '\t' || (newlineOK && (c == '\r' || c == '\n')):
			p.pos++
		default:
			return
		}
	}
}

func isWordChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-' || '0' <= c && c <= '9'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func (p *gbnfParser) name() (string, error) {
	start := p.pos
	for isWordChar(p.at(p.pos)) {
		p.pos++
	}
	if p.pos == start {
		return "", errGBNFSyntax
	}
	return p.src[start:p.pos], nil
}

// integer parses a repetition count as std::stoul would, refusing what
// it would throw on.
func (p *gbnfParser) integer() (uint64, error) {
	start := p.pos
	for isDigit(p.at(p.pos)) {
		p.pos++
	}
	n, err := strconv.ParseUint(p.src[start:p.pos], 10, 64)
	if err != nil {
		return 0, errGBNFSyntax
	}
	return n, nil
}

// char steps over one character of a literal or class, as parse_char.
func (p *gbnfParser) char() error {
	c := p.at(p.pos)
	if c == 0 && p.pos >= len(p.src) {
		return errGBNFSyntax
	}
	if c != '\\' {
		p.pos += utf8Len(c)
		return nil
	}
	hex := 0
	switch p.at(p.pos + 1) {
	case 'x':
		hex = 2
	case 'u':
		hex = 4
	case 'U':
		hex = 8
	case 't', 'r', 'n', '\\', '"', '[', ']':
		p.pos += 2
		return nil
	default:
		return errGBNFSyntax
	}
	p.pos += 2
	for range hex {
		c := p.at(p.pos)
		if !isDigit(c) && !('a' <= c && c <= 'f') && !('A' <= c && c <= 'F') {
			return errGBNFSyntax
		}
		p.pos++
	}
	return nil
}

// utf8Len is the length decode_utf8 gives a sequence by its first byte;
// it stops early at a NUL, which a Go string passed to C ends at too.
func utf8Len(c byte) int {
	switch {
	case c < 0x80:
		return 1
	case c>>5 == 0x6:
		return 2
	case c>>4 == 0xe:
		return 3
	case c >= 0xf0:
		return 4
	}
	return 1
}

func (p *gbnfParser) parse() error {
	p.space(true)
	for p.pos < len(p.src) {
		if err := p.rule(); err != nil {
			return err
		}
	}
	return nil
}

func (p *gbnfParser) rule() error {
	name, err := p.name()
	if err != nil {
		return err
	}
	p.space(false)
	id := p.symbolID(name)
	if p.at(p.pos) != ':' || p.at(p.pos+1) != ':' || p.at(p.pos+2) != '=' {
		return errGBNFSyntax
	}
	p.pos += 3
	p.space(true)
	if err := p.alternates(name, id, false); err != nil {
		return err
	}
	switch p.at(p.pos) {
	case '\r':
		p.pos++
		if p.at(p.pos) == '\n' {
			p.pos++
		}
	case '\n':
		p.pos++
	default:
		if p.pos < len(p.src) {
			return errGBNFSyntax
		}
	}
	p.space(true)
	return nil
}

func (p *gbnfParser) alternates(name string, id int, nested bool) error {
	var alts [][]gbnfSym
	for {
		seq, err := p.sequence(name, nested)
		if err != nil {
			return err
		}
		alts = append(alts, seq)
		if p.at(p.pos) != '|' {
			break
		}
		p.pos++
		p.space(true)
	}
	return p.addRule(id, alts)
}

func (p *gbnfParser) sequence(name string, nested bool) ([]gbnfSym, error) {
	var seq []gbnfSym
	last := 0 // where the last item begins
	add := func(s gbnfSym) error {
		seq = append(seq, s)
		return p.grow(s.size)
	}
	for p.pos < len(p.src) {
		switch c := p.src[p.pos]; {
		case c == '"':
			p.pos++
			last = len(seq)
			for p.at(p.pos) != '"' {
				if err := p.char(); err != nil {
					return nil, err
				}
				if err := add(gbnfSym{-1, 1}); err != nil {
					return nil, err
				}
			}
			p.pos++
			p.space(nested)
		case c == '[':
			p.pos++
			if p.at(p.pos) == '^' {
				p.pos++
			}
			last = len(seq)
			n := 0
			for p.at(p.pos) != ']' {
				if err := p.char(); err != nil {
					return nil, err
				}
				n++
				if p.at(p.pos) == '-' && p.at(p.pos+1) != ']' {
					if p.pos+1 >= len(p.src) {
						return nil, errGBNFSyntax
					}
					p.pos++
					if err := p.char(); err != nil {
						return nil, err
					}
					n++
				}
			}
			if n > 0 {
				if err := add(gbnfSym{-1, n}); err != nil {
					return nil, err
				}
			}
			p.pos++
			p.space(nested)
		case c == '<' || c == '!':
			if c == '!' {
				p.pos++
			}
			if err := p.token(); err != nil {
				return nil, err
			}
			last = len(seq)
			if err := add(gbnfSym{-1, 1}); err != nil {
				return nil, err
			}
			p.space(nested)
		case isWordChar(c):
			n, _ := p.name()
			ref := p.symbolID(n)
			p.space(nested)
			last = len(seq)
			if err := add(gbnfSym{ref, 1}); err != nil {
				return nil, err
			}
		case c == '(':
			if p.nesting++; p.nesting > maxGrammarNesting {
				return nil, fmt.Errorf("groups nest more than %d deep", maxGrammarNesting)
			}
			p.pos++
			p.space(true)
			sub := p.generateID(name)
			if err := p.alternates(name, sub, true); err != nil {
				return nil, err
			}
			p.nesting--
			last = len(seq)
			if err := add(gbnfSym{sub, 1}); err != nil {
				return nil, err
			}
			if p.at(p.pos) != ')' {
				return nil, errGBNFSyntax
			}
			p.pos++
			p.space(nested)
		case c == '.':
			last = len(seq)
			if err := add(gbnfSym{-1, 1}); err != nil {
				return nil, err
			}
			p.pos++
			p.space(nested)
		case c == '*' || c == '+' || c == '?':
			p.pos++
			p.space(nested)
			lo, hi := uint64(0), uint64(math.MaxUint64)
			switch c {
			case '+':
				lo = 1
			case '?':
				hi = 1
			}
			var err error
			if seq, err = p.repeat(name, seq, last, lo, hi); err != nil {
				return nil, err
			}
		case c == '{':
			p.pos++
			p.space(nested)
			if !isDigit(p.at(p.pos)) {
				return nil, errGBNFSyntax
			}
			lo, err := p.integer()
			if err != nil {
				return nil, err
			}
			p.space(nested)
			hi := uint64(math.MaxUint64)
			switch p.at(p.pos) {
			case '}':
				hi = lo
			case ',':
				p.pos++
				p.space(nested)
				if isDigit(p.at(p.pos)) {
					if hi, err = p.integer(); err != nil {
						return nil, err
					}
					p.space(nested)
				}
				if p.at(p.pos) != '}' {
					return nil, errGBNFSyntax
				}
			default:
				return nil, errGBNFSyntax
			}
			p.pos++
			p.space(nested)
			if lo > gbnfMaxRepetition || (hi != math.MaxUint64 && hi > gbnfMaxRepetition) {
				return nil, errGBNFSyntax // llama.cpp refuses it
			}
			if hi < lo {
				return nil, fmt.Errorf("repetition {%d,%d}: the minimum is greater than the maximum", lo, hi)
			}
			if seq, err = p.repeat(name, seq, last, lo, hi); err != nil {
				return nil, err
			}
		default:
			return seq, nil
		}
	}
	return seq, nil
}

// token steps over <token>, <[id]> (after a '!').
func (p *gbnfParser) token() error {
	if p.at(p.pos) != '<' {
		return errGBNFSyntax
	}
	p.pos++
	if p.at(p.pos) == '[' {
		p.pos++
		if !isDigit(p.at(p.pos)) {
			return errGBNFSyntax
		}
		if _, err := p.integer(); err != nil {
			return err
		}
		if p.at(p.pos) != ']' || p.at(p.pos+1) != '>' {
			return errGBNFSyntax
		}
		p.pos += 2
		return nil
	}
	for p.pos < len(p.src) && p.src[p.pos] != '>' {
		p.pos++
	}
	if p.pos >= len(p.src) {
		return errGBNFSyntax
	}
	p.pos++
	return nil
}

// repeat applies {lo,hi} (hi MaxUint64: no maximum) to the item seq[last:]
// as llama.cpp's handle_repetitions does: lo copies of it, then hi-lo
// nested optional rules (or one recursive rule without a maximum).
func (p *gbnfParser) repeat(name string, seq []gbnfSym, last int, lo, hi uint64) ([]gbnfSym, error) {
	if last >= len(seq) {
		return nil, errGBNFSyntax // nothing to repeat
	}
	item := append([]gbnfSym(nil), seq[last:]...)
	size := 0
	for _, s := range item {
		size += s.size
	}
	if lo == 0 {
		seq = seq[:last]
	}
	for i := uint64(1); i < lo; i++ {
		if err := p.grow(size); err != nil {
			return nil, err
		}
		seq = append(seq, item...)
	}
	noMax := hi == math.MaxUint64
	nOpt := uint64(1)
	if !noMax {
		nOpt = hi - lo
	}
	lastRec := 0
	for i := uint64(0); i < nOpt; i++ {
		id := p.generateID(name)
		alt := append([]gbnfSym(nil), item...)
		if i > 0 || noMax {
			ref := lastRec
			if noMax {
				ref = id
			}
			alt = append(alt, gbnfSym{ref, 1})
		}
		if err := p.addRule(id, [][]gbnfSym{alt, nil}); err != nil {
			return nil, err
		}
		lastRec = id
	}
	if nOpt > 0 {
		if err := p.grow(1); err != nil {
			return nil, err
		}
		seq = append(seq, gbnfSym{lastRec, 1})
	}
	return seq, nil
}

// A grammarCost measures llama.cpp's advance of parse stacks
// (llama_grammar_advance_stack) on a parsed grammar. Advancing a stack
// whose top is a rule reference pushes each alternative of the rule in
// turn, recursively, until a terminal is on top; an alternative that can
// be empty falls through to what follows the reference, and past the end
// of a rule to the stack below. From a position in an alternative:
//
//	calls  the steps of that search until it reaches terminals or falls
//	       off the end of the alternative
//	stacks the stacks it leaves (one per terminal reached)
//	ends   the ways it falls off the end (nested optional items multiply
//	       them)
//	next   the steps of advancing each of those stacks in turn once the
//	       next character matches its terminal: the work of the next
//	       character
//
// A rule's are the sums over its alternatives. The search past the end of
// a rule depends on the stack below it: below holds, for each rule, the
// most it can cost over the places the rule is referred to.
type grammarCost struct {
	rules [][][]gbnfSym
	names []string
	state []byte // 0 new, 1 being measured, 2 measured
	cost  []gcost
	depth int

	reach []bool
	suf   [][][]gcost // by rule and alternative: from each position
	sites []site
	below []gcost
	comps [][]int // of the references that can fall through, callers first
	comp  []int
}

type gcost struct{ calls, stacks, ends, next uint64 }

func newGrammarCost(rules [][][]gbnfSym, names []string) *grammarCost {
	return &grammarCost{rules: rules, names: names, state: make([]byte, len(rules)), cost: make([]gcost, len(rules))}
}

// satMax caps the measures far below overflow.
const satMax = 1 << 60

func sadd(a, b uint64) uint64 { return min(a+b, satMax) }

func smul(a, b uint64) uint64 {
	if a == 0 || b == 0 {
		return 0
	}
	if a > satMax/b {
		return satMax
	}
	return a * b
}

func (g *grammarCost) name(id int) string {
	if id < len(g.names) && g.names[id] != "" {
		return g.names[id]
	}
	return "#" + strconv.Itoa(id)
}

// rule measures calls, stacks and ends of rule id, refusing left
// recursion: llama.cpp's own check misses a rule that begins with itself
// through a rule that can be empty without an empty alternative, and its
// search then recurses until the stack overflows.
func (g *grammarCost) rule(id int) (gcost, error) {
	switch g.state[id] {
	case 2:
		return g.cost[id], nil
	case 1:
		return gcost{}, fmt.Errorf("left recursion: rule %s can begin with itself", g.name(id))
	}
	if g.depth++; g.depth > maxGrammarChain {
		return gcost{}, fmt.Errorf("more than %d rules begin one another from rule %s", maxGrammarChain, g.name(id))
	}
	g.state[id] = 1
	var c gcost
	for _, alt := range g.rules[id] {
		mult := uint64(1)
		for i := 0; ; i++ {
			if i == len(alt) {
				c.ends = sadd(c.ends, mult)
				break
			}
			s := alt[i]
			if s.ref < 0 {
				c.calls = sadd(c.calls, mult)
				c.stacks = sadd(c.stacks, mult)
				break
			}
			r, err := g.rule(s.ref)
			if err != nil {
				return c, err
			}
			c.calls = sadd(c.calls, smul(mult, sadd(1, r.calls)))
			c.stacks = sadd(c.stacks, smul(mult, r.stacks))
			if mult = smul(mult, r.ends); mult == 0 {
				break
			}
		}
	}
	g.depth--
	g.state[id] = 2
	g.cost[id] = c
	return c, nil
}

// site is a reference to rule to from rule from at position i of its
// alternative alt.
type site struct{ from, alt, i, to int }

func (s site) cont(g *grammarCost) gcost { return g.suf[s.from][s.alt][s.i+1] }

// suffix measures calls, stacks and ends from every position of an
// alternative, once every rule it refers to is measured: c[i] from
// position i, c[len] at the end.
func (g *grammarCost) suffix(alt []gbnfSym) []gcost {
	c := make([]gcost, len(alt)+1)
	c[len(alt)] = gcost{ends: 1}
	for i := len(alt) - 1; i >= 0; i-- {
		s := alt[i]
		if s.ref < 0 {
			c[i] = gcost{calls: 1, stacks: 1}
			continue
		}
		r, n := g.cost[s.ref], c[i+1]
		c[i] = gcost{
			calls:  sadd(sadd(1, r.calls), smul(r.ends, n.calls)),
			stacks: sadd(r.stacks, smul(r.ends, n.stacks)),
			ends:   smul(r.ends, n.ends),
		}
	}
	return c
}

// after is the search once the terminal at position i of alternative a of
// rule r has matched.
func (g *grammarCost) after(r, a, i int) uint64 {
	c := g.suf[r][a][i+1]
	return sadd(c.calls, smul(c.ends, g.below[r].calls))
}

// nextRule measures next for rule id: the after of every terminal its
// search reaches, with the search's multiplicity.
func (g *grammarCost) nextRule(id int, memo []uint64, done []bool) uint64 {
	if done[id] {
		return memo[id]
	}
	var n uint64
	for a, alt := range g.rules[id] {
		mult := uint64(1)
		for i := 0; i < len(alt) && mult > 0; i++ {
			s := alt[i]
			if s.ref < 0 {
				n = sadd(n, smul(mult, g.after(id, a, i)))
				break
			}
			n = sadd(n, smul(mult, g.nextRule(s.ref, memo, done)))
			mult = smul(mult, g.cost[s.ref].ends)
		}
	}
	done[id], memo[id] = true, n
	return n
}

// check measures the grammar from root and refuses it when one advance of
// the stacks could take more than maxGrammarWork steps or leave more than
// maxGrammarWork stacks, or the next character's advance of all the
// stacks it leaves could take more than maxGrammarWork steps.
func (g *grammarCost) check(root int) error {
	// The rules root reaches, each measured.
	g.reach = make([]bool, len(g.rules))
	g.reach[root] = true
	todo := []int{root}
	for len(todo) > 0 {
		r := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if _, err := g.rule(r); err != nil {
			return err
		}
		for _, alt := range g.rules[r] {
			for _, s := range alt {
				if s.ref >= 0 && !g.reach[s.ref] {
					g.reach[s.ref] = true
					todo = append(todo, s.ref)
				}
			}
		}
	}
	// Every position of their alternatives, and the references.
	g.suf = make([][][]gcost, len(g.rules))
	for r, alts := range g.rules {
		if !g.reach[r] {
			continue
		}
		g.suf[r] = make([][]gcost, len(alts))
		for a, alt := range alts {
			g.suf[r][a] = g.suffix(alt)
			for i, s := range alt {
				if s.ref >= 0 {
					g.sites = append(g.sites, site{r, a, i, s.ref})
				}
			}
		}
	}
	if err := g.components(root); err != nil {
		return err
	}
	g.below = make([]gcost, len(g.rules))
	g.below[root] = gcost{calls: 1, stacks: 1}
	g.propagate(func(c *gcost) *uint64 { return &c.calls }, func(c *gcost) *uint64 { return &c.stacks })

	// next, for rules, positions and below.
	memo, done := make([]uint64, len(g.rules)), make([]bool, len(g.rules))
	for r, alts := range g.rules {
		if !g.reach[r] {
			continue
		}
		for a, alt := range alts {
			c := g.suf[r][a]
			for i := len(alt) - 1; i >= 0; i-- {
				s := alt[i]
				if s.ref < 0 {
					c[i].next = g.after(r, a, i)
				} else {
					c[i].next = sadd(g.nextRule(s.ref, memo, done), smul(g.cost[s.ref].ends, c[i+1].next))
				}
			}
		}
	}
	g.propagate(func(c *gcost) *uint64 { return &c.next })

	// The positions the stacks are advanced from: the alternatives of
	// root, and the position after each terminal.
	var calls, stacks, next uint64
	measure := func(r int, c gcost) {
		b := g.below[r]
		calls = max(calls, sadd(c.calls, smul(c.ends, b.calls)))
		stacks = max(stacks, sadd(c.stacks, smul(c.ends, b.stacks)))
		next = max(next, sadd(c.next, smul(c.ends, b.next)))
	}
	for a := range g.rules[root] {
		measure(root, g.suf[root][a][0])
	}
	for r, alts := range g.rules {
		if !g.reach[r] {
			continue
		}
		for a, alt := range alts {
			for i, s := range alt {
				if s.ref < 0 {
					measure(r, g.suf[r][a][i+1])
				}
			}
		}
	}
	switch {
	case calls > maxGrammarWork:
		return fmt.Errorf("too many ways for its rules to begin: one step of the parser would take %s steps, more than %d", workString(calls), maxGrammarWork)
	case stacks > maxGrammarWork:
		return fmt.Errorf("too many ways for its rules to begin: the parser would follow %s at once, more than %d", workString(stacks), maxGrammarWork)
	case next > maxGrammarWork:
		return fmt.Errorf("too many ways for its rules to continue: one character would take the parser %s steps, more than %d", workString(next), maxGrammarWork)
	}
	return nil
}

func workString(n uint64) string {
	if n >= satMax {
		return "astronomically many"
	}
	return strconv.FormatUint(n, 10)
}

// components finds the strongly connected components of the references
// through which the search falls back to the referring rule (a
// continuation that can be empty), callers first, and refuses a cycle of
// them that can fall through in more than one way: the stack grows with
// the text through such a cycle, and the search would double at each
// level of it.
func (g *grammarCost) components(root int) error {
	n := len(g.rules)
	out := make([][]int, n)
	for _, s := range g.sites {
		if s.cont(g).ends > 0 {
			out[s.from] = append(out[s.from], s.to)
		}
	}
	index, low := make([]int, n), make([]int, n)
	g.comp = make([]int, n)
	for i := range index {
		index[i], g.comp[i] = -1, -1
	}
	var stack []int
	onStack := make([]bool, n)
	next := 0
	var comps [][]int
	// An explicit stack: the references can chain as long as the grammar.
	type frame struct{ v, e int }
	for start := range n {
		if index[start] >= 0 || !g.reach[start] {
			continue
		}
		frames := []frame{{start, 0}}
		index[start], low[start] = next, next
		next++
		stack = append(stack, start)
		onStack[start] = true
		for len(frames) > 0 {
			f := &frames[len(frames)-1]
			if f.e < len(out[f.v]) {
				w := out[f.v][f.e]
				f.e++
				if index[w] < 0 {
					index[w], low[w] = next, next
					next++
					stack = append(stack, w)
					onStack[w] = true
					frames = append(frames, frame{w, 0})
				} else if onStack[w] {
					low[f.v] = min(low[f.v], index[w])
				}
				continue
			}
			v := f.v
			frames = frames[:len(frames)-1]
			if len(frames) > 0 {
				u := frames[len(frames)-1].v
				low[u] = min(low[u], low[v])
			}
			if low[v] == index[v] {
				var c []int
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[w] = false
					g.comp[w] = len(comps)
					c = append(c, w)
					if w == v {
						break
					}
				}
				comps = append(comps, c)
			}
		}
	}
	// Tarjan's order is callees first.
	for i, j := 0, len(comps)-1; i < j; i, j = i+1, j-1 {
		comps[i], comps[j] = comps[j], comps[i]
	}
	for ci := range comps {
		for _, v := range comps[ci] {
			g.comp[v] = ci
		}
	}
	g.comps = comps
	for _, s := range g.sites {
		if e := s.cont(g).ends; e > 1 && g.comp[s.from] == g.comp[s.to] {
			return fmt.Errorf("ambiguous recursion: rule %s can end in %d ways inside rule %s, which it is part of, so the parser's work would multiply at each level",
				g.name(s.to), e, g.name(s.from))
		}
	}
	return nil
}

// propagate computes the given measures of below, callers first: for a
// rule, the most over its references of what follows the reference, and
// past its end what is below the referring rule. Inside a cycle (which
// falls through in one way) the stack grows with the text, adding what
// follows each reference of the cycle at each turn: that is counted once.
func (g *grammarCost) propagate(fields ...func(*gcost) *uint64) {
	in := make([][]site, len(g.rules))
	for _, s := range g.sites {
		in[s.to] = append(in[s.to], s)
	}
	for ci, comp := range g.comps {
		for _, f := range fields {
			var entry, inner uint64
			for _, v := range comp {
				entry = max(entry, *f(&g.below[v]))
				for _, s := range in[v] {
					c := s.cont(g)
					if g.comp[s.from] == ci && c.ends > 0 {
						inner = sadd(inner, *f(&c))
						continue
					}
					entry = max(entry, sadd(*f(&c), smul(c.ends, *f(&g.below[s.from]))))
				}
			}
			for _, v := range comp {
				*f(&g.below[v]) = sadd(entry, inner)
			}
		}
	}
}
