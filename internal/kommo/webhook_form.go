package kommo

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// maxFormPairs is url.ParseQuery's cap on the pairs of one query (net/url's
// defaultMaxParams), counted as it counts them: one more than the '&'s. A
// body that ParseQuery would refuse is refused here too.
const maxFormPairs = 10000

// bodyKey names the whole body in errors that no single key is at fault for.
const bodyKey = "(body)"

// formScanner splits an application/x-www-form-urlencoded body exactly as
// url.ParseQuery does — pairs at '&', empty pairs skipped, a pair holding
// ';' refused, key and value cut at the first '=', '+' decoding to a space —
// but allocates nothing: the key is decoded into a scratch buffer reused for
// every pair and cut into segments, and the value is left encoded (its
// escapes checked) until the parser decides whether it keeps it. Positions
// are kept as offsets, not slices: storing a slice in the (heap) scanner
// costs a GC write barrier, and there are several per pair.
type formScanner struct {
	body  []byte // set by start, read only
	buf   []byte // decoded keys; room for the whole body
	pos   int    // where the next pair starts; past the end when done
	pairs int    // pairs cut so far, empty ones included

	keyLen            int // the current key is buf[:keyLen], see key
	valueAt, valueEnd int // the current value is body[valueAt:valueEnd]

	// The key's segments: seg[i] is key()[start:end]. decodeKey finds them
	// while decoding a plain root[a][b]… key; for any other (odd) key,
	// splitKey, the reference, finds them or the error.
	seg  [maxKeyDepth]bound
	nseg int
	odd  bool

	// The previous key if it was plain, body[prevAt:prevEnd] (prevEnd < 0
	// if none), and where each of its segments' closing bracket ends in it:
	// a key sharing a prefix with it (Kommo repeats long prefixes key after
	// key) resumes decoding after the shared segments instead of decoding
	// them again.
	prevAt, prevEnd int
	prevAfter       [maxKeyDepth]int
}

// bound is a segment of the decoded key.
type bound struct{ start, end int }

func (s *formScanner) start(body []byte) {
	s.body, s.pos, s.pairs, s.prevEnd = body, 0, 0, -1
	if cap(s.buf) < len(body) { // a key decodes to no more than its encoding
		s.buf = make([]byte, len(body))
	}
	s.buf = s.buf[:cap(s.buf)]
}

// key is the current key, decoded; valid until the next call of next.
func (s *formScanner) key() []byte { return s.buf[:s.keyLen] }

// value is the current value, still encoded.
func (s *formScanner) value() []byte { return s.body[s.valueAt:s.valueEnd] }

// next moves to the next non-empty pair and reports false at the end of the
// body. Every pair is checked, whether or not the parser reads it, so a body
// is refused for the same encoding faults as url.ParseQuery refuses. The
// body is walked once: decodeKey stops at the end of the key, scanValue at
// the end of the value.
func (s *formScanner) next() (bool, error) {
	for s.pos <= len(s.body) {
		if s.pairs++; s.pairs > maxFormPairs {
			return false, malformed(bodyKey, "malformed form encoding: more than %d pairs", maxFormPairs)
		}
		rest := s.body[s.pos:]
		k, ok := s.decodeKey(rest)
		if !ok {
			return false, s.encodingError(rest)
		}
		end := k // of the pair
		s.valueAt, s.valueEnd = s.pos+k, s.pos+k
		if k < len(rest) && rest[k] == '=' {
			n, ok := scanValue(rest[k+1:])
			if !ok {
				return false, s.encodingError(rest)
			}
			s.valueAt, s.valueEnd = s.pos+k+1, s.pos+k+1+n
			end = k + 1 + n
		}
		s.pos += end + 1 // past the '&', or past the end of the body
		if end > 0 {
			return true, nil
		}
		// An empty pair ("&&"): skipped, as url.ParseQuery skips it.
	}
	return false, nil
}

// encodingError says what is wrong with the encoding of the pair that rest
// starts with: a ';' (url.ParseQuery looks for it first), a bad escape in
// the key, or else one in the value.
func (s *formScanner) encodingError(rest []byte) error {
	pair, _, _ := bytes.Cut(rest, []byte("&"))
	if bytes.IndexByte(pair, ';') >= 0 {
		return malformed(bodyKey, "malformed form encoding: ';' between pairs, only '&' separates them")
	}
	rawKey, _, _ := bytes.Cut(pair, []byte("="))
	key, ok := appendUnescaped(nil, rawKey)
	if !ok {
		return malformed(string(rawKey), "malformed form encoding: bad %%-escape in the key")
	}
	// The value is not shown: it may be someone's data.
	return malformed(string(key), "malformed form encoding: bad %%-escape in the value")
}

// decodeKey decodes the key rest starts with (up to '=', '&' or the end)
// into s.buf and, in the same pass, finds its segments if it has the plain
// shape root[a][b]…: keys are most of a body's bytes, so they are walked
// once, and only past the prefix they share with the previous key. It
// returns the key's length in rest, or false at a ';' or a bad escape.
// The loop calls nothing: s.buf has room for the whole body (see start),
// so there is no growing, and the brackets are followed inline.
func (s *formScanner) decodeKey(rest []byte) (int, bool) {
	i, j := s.resume(rest)
	key := s.buf
	open, closed := -1, j // where the open bracket's segment starts; where the last ']' ends
	s.prevEnd = -1
	for i < len(rest) {
		c := rest[i]
		i++
		if keySpecial[c] { // else an ordinary byte: copied, the common case
			switch c {
			case '=', '&':
				i--
				goto end
			case ';':
				return 0, false
			case '%':
				if i+1 >= len(rest) || !isHex(rest[i]) || !isHex(rest[i+1]) {
					return 0, false
				}
				c = unhex(rest[i])<<4 | unhex(rest[i+1])
				i += 2
			case '+':
				c = ' '
			}
			switch c {
			case '[':
				if open >= 0 || (s.nseg == 0 && j == 0) || (s.nseg > 0 && closed != j) {
					s.odd = true // '[' inside brackets, no root name, text after ']'
				} else if s.nseg == 0 {
					s.addSegment(0, j, -1)
				}
				open = j + 1
			case ']':
				if open < 0 || open == j {
					s.odd = true // ']' without '[', empty brackets
				} else {
					s.addSegment(open, j, i)
				}
				open, closed = -1, j+1
			}
		}
		key[j] = c
		j++
	}
end:
	switch {
	case open >= 0 || (s.nseg > 0 && closed != j) || j == 0:
		s.odd = true // '[' never closed, text after the last ']', no name
	case s.nseg == 0:
		s.addSegment(0, j, -1)
	}
	s.keyLen = j
	if !s.odd {
		s.prevAt, s.prevEnd = s.pos, s.pos+i
	}
	return i, true
}

// resume restores the state decodeKey had, on the previous key, right after
// the deepest of its closing brackets that raw shares the prefix up to, and
// returns where to go on in raw and in the key. Decoding is a left-to-right
// function of the encoded bytes, so that state is raw's own.
func (s *formScanner) resume(raw []byte) (i, j int) {
	n, prev := 0, []byte(nil)
	if s.prevEnd >= 0 && !s.odd {
		n, prev = s.nseg, s.body[s.prevAt:s.prevEnd]
	}
	s.odd = false
	// Deepest first: a key usually differs from the previous one in its
	// last segment or two.
	for ; n > 1; n-- {
		at := s.prevAfter[n-1]
		if at > len(raw) || at >= 8 && // the last eight bytes first: they tell most misses
			binary.LittleEndian.Uint64(raw[at-8:]) != binary.LittleEndian.Uint64(prev[at-8:]) {
			continue
		}
		if bytes.Equal(raw[:at], prev[:at]) {
			s.nseg = n
			return at, s.seg[n-1].end + 1
		}
	}
	s.nseg = 0
	return 0, 0
}

// keySpecial marks the bytes decodeKey must look at; it copies the others.
var keySpecial = [256]bool{'=': true, '&': true, ';': true, '%': true, '+': true, '[': true, ']': true}

// addSegment records key[start:end] as the next segment; rawAfter is where
// its closing bracket ends in the encoded key (-1 for the root).
func (s *formScanner) addSegment(start, end, rawAfter int) {
	if s.nseg == maxKeyDepth {
		s.odd = true // too deep: splitKey says so
		return
	}
	s.seg[s.nseg] = bound{start, end}
	s.prevAfter[s.nseg] = rawAfter
	s.nseg++
}

// split makes sure the segments of the current key are known: for an odd
// key, splitKey finds them or the error.
func (s *formScanner) split() error {
	if !s.odd {
		return nil
	}
	n, err := splitKey(s.key(), &s.seg)
	s.nseg = n
	return err
}

// appendUnescaped appends the form decoding of src to dst ('+' is a space,
// %XX a byte). It reports false at a '%' not followed by two hex digits.
// Runs without '%' or '+' (most of a value) are copied whole.
func appendUnescaped(dst, src []byte) ([]byte, bool) {
	for {
		i := plainPrefix(src)
		dst = append(dst, src[:i]...)
		if i == len(src) {
			return dst, true
		}
		if src[i] == '+' {
			dst = append(dst, ' ')
			src = src[i+1:]
			continue
		}
		if i+2 >= len(src) || !isHex(src[i+1]) || !isHex(src[i+2]) {
			return dst, false
		}
		dst = append(dst, unhex(src[i+1])<<4|unhex(src[i+2]))
		src = src[i+3:]
	}
}

// plainPrefix returns the length of the prefix of s without '%' or '+',
// looking at eight bytes at a time.
func plainPrefix(s []byte) int {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := binary.LittleEndian.Uint64(s[i:])
		if m := hasByte(x, '%') | hasByte(x, '+'); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for i < len(s) && s[i] != '%' && s[i] != '+' {
		i++
	}
	return i
}

// scanValue finds the end of the value v starts with (at '&' or the end of
// v) and checks it as url.ParseQuery does: it reports false at a ';' or a
// '%' not starting a %XX escape.
func scanValue(v []byte) (int, bool) {
	for i := 0; ; i += 3 {
		i += valueRun(v[i:])
		if i == len(v) || v[i] == '&' {
			return i, true
		}
		if v[i] == ';' || i+2 >= len(v) || !isHex(v[i+1]) || !isHex(v[i+2]) {
			return i, false
		}
	}
}

// valueRun returns the length of the prefix of v without '&', ';' or '%',
// eight bytes at a time: every value of a body is scanned, most hold none
// of them, and some (names, notes) are long.
func valueRun(v []byte) int {
	i := 0
	for ; i+8 <= len(v); i += 8 {
		x := binary.LittleEndian.Uint64(v[i:])
		if m := hasByte(x, '&') | hasByte(x, ';') | hasByte(x, '%'); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for i < len(v) && v[i] != '&' && v[i] != ';' && v[i] != '%' {
		i++
	}
	return i
}

// hasByte is non-zero if one of the eight bytes of x is b: the classic
// "has a zero byte" test on x^b…b. Its lowest set bit is the high bit of
// the first such byte (a borrow can only mark bytes after it).
func hasByte(x uint64, b byte) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	y := x ^ (ones * uint64(b))
	return (y - ones) &^ y & highs
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// isOurRoot reports whether a decoded key belongs to "contacts" or
// "account", the only entities the parser reads. The root ends at the first
// bracket of either kind so that "contacts]x" is inspected (and refused) too.
func isOurRoot(key []byte) bool {
	return hasRoot(key, "contacts") || hasRoot(key, "account") || hasRoot(key, "leads")
}

func hasRoot(key []byte, root string) bool {
	return len(key) >= len(root) && string(key[:len(root)]) == root &&
		(len(key) == len(root) || key[len(root)] == '[' || key[len(root)] == ']')
}

// splitKey splits a decoded bracketed key: "a[b][c]" → "a","b","c", as
// bounds into seg. Empty names, unbalanced or stray brackets, text after a
// closing bracket and overly deep keys are errors. It is the reference for
// decodeKey's fast path, and serves the keys that path finds odd.
func splitKey(key []byte, seg *[maxKeyDepth]bound) (int, error) {
	root := len(key)
	if open := bytes.IndexByte(key, '['); open >= 0 {
		root = open
	}
	if root == 0 {
		return 0, malformed(string(key), "key has an empty name before '['")
	}
	if bytes.IndexByte(key[:root], ']') >= 0 {
		return 0, malformed(string(key), "']' without a matching '['")
	}
	seg[0] = bound{0, root}
	n := 1
	for at := root; at < len(key); {
		if key[at] != '[' {
			return 0, malformed(string(key), "text after ']' must start a new '[…]'")
		}
		end := bytes.IndexByte(key[at:], ']')
		if end < 0 {
			return 0, malformed(string(key), "'[' without a matching ']'")
		}
		if end == 1 {
			return 0, malformed(string(key), "empty brackets '[]'")
		}
		if bytes.IndexByte(key[at+1:at+end], '[') >= 0 {
			return 0, malformed(string(key), "'[' inside brackets")
		}
		if n == maxKeyDepth {
			return 0, malformed(string(key), "key nested deeper than %d levels", maxKeyDepth)
		}
		seg[n] = bound{at + 1, at + end}
		n++
		at += end + 1
	}
	return n, nil
}
