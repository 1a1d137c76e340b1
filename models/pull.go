package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"

	"github.com/llamago/llamago/gguf"
)

// DefaultUserAgent is the User-Agent of a Store whose UserAgent is empty.
var DefaultUserAgent = "llamago/" + buildVersion() + " (+https://github.com/llamago/llamago)"

// buildVersion returns the version of this module in the running binary, or
// "dev".
func buildVersion() string {
	const module = "github.com/llamago/llamago"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	mods := append([]*debug.Module{&bi.Main}, bi.Deps...)
	for _, m := range mods {
		if m != nil && m.Path == module && m.Version != "" && m.Version != "(devel)" {
			return m.Version
		}
	}
	return "dev"
}

// PullOptions are the options of Store.Pull. A nil *PullOptions is valid and
// means no options.
type PullOptions struct {
	// Progress, if not nil, is called from the calling goroutine when a
	// download starts, after each block of data received, and when it ends.
	// It is not called for files that are already present.
	Progress func(Progress)
}

// Progress describes a download in progress, for a progress bar.
type Progress struct {
	// File is the path the file will have in the store.
	File string
	// Part is the number of the file among the Parts parts of a split
	// model; both are 1 for a model in one file.
	Part, Parts int
	// Done is the number of bytes of the file downloaded so far, including
	// those of an earlier, interrupted download that this one resumes.
	Done int64
	// Total is the size of the file in bytes, or -1 if the server did not
	// say.
	Total int64
}

// A remoteFile is a file to download.
type remoteFile struct {
	url    string
	root   string // the store directory dest is in
	dest   string
	size   int64  // expected size, or 0 if not known
	sha256 string // expected lower-case hex digest, or ""
}

// Pull makes the model that ref names available locally and returns its
// path, as Resolve does. If Resolve finds it, Pull returns it without any
// network access. Otherwise, for a catalog alias, an hf:// reference, a
// name in the store's layout (OWNER/REPO/FILE.gguf) or OWNER/REPO[:QUANT],
// it downloads the file into the first search directory, as
// OWNER/REPO/FILE, and returns its path; other references give the
// *NotFoundError of Resolve. For a split model Pull downloads every part and
// returns the path of the first, whichever part ref names.
//
// A download goes to FILE.partial, which a later Pull resumes if this one is
// interrupted or ctx is cancelled. Once complete, its size and SHA-256 are
// checked when known (from the catalog or the Hugging Face API) and it must
// be a valid GGUF file; if not, it is deleted. Only then is it renamed into
// place. A lock file, FILE.lock, makes concurrent pulls of one file, also
// from other processes, wait for the first and then use its result.
//
// With s.Offline set, Pull makes no network request and fails with an
// error matching ErrOffline and ErrNotFound.
func (s *Store) Pull(ctx context.Context, ref string, opts *PullOptions) (string, error) {
	r, err := parseRef(ref)
	if err != nil {
		return "", err
	}
	dirs, err := s.SearchDirs()
	if err != nil {
		return "", err
	}
	p, err := s.resolve(r, dirs, false)
	if err == nil {
		return p, nil
	}
	var nf *NotFoundError
	if !errors.As(err, &nf) {
		return "", err
	}

	var (
		target = r
		entry  CatalogEntry
	)
	switch r.kind {
	case refHFFile, refHFRepo:
	case refName:
		if e, ok := lookupAlias(s.catalog(), r.raw); ok {
			entry = e
			target, _ = parseRef(e.Ref) // checked by resolve
		} else if fr, ok := storeFileRef(r.raw); ok {
			target = fr
		} else {
			return "", nf
		}
	default:
		return "", nf
	}
	if s.Offline {
		if nf.Err != nil {
			nf.Err = fmt.Errorf("%w (%w)", ErrOffline, nf.Err)
		} else {
			nf.Err = ErrOffline
		}
		return "", nf
	}

	endpoint, err := s.endpoint()
	if err != nil {
		return "", err
	}
	base := endpoint + "/" + target.owner + "/" + target.repo + "/resolve/main/"
	var names []string
	sizes := map[string]int64{}
	sums := map[string]string{}
	if target.kind == refHFRepo {
		sibs, err := s.repoFiles(ctx, endpoint, target.owner, target.repo)
		if err != nil {
			return "", err
		}
		var files []string
		for _, sib := range sibs {
			files = append(files, sib.name)
			sizes[sib.name], sums[sib.name] = sib.size, sib.sha256
		}
		name, err := selectFile(files, target.quant, false)
		if err != nil {
			return "", fmt.Errorf("%s/%s: %w", target.owner, target.repo, err)
		}
		names = partNames(name)
		for _, n := range names {
			if _, ok := sizes[n]; !ok {
				return "", fmt.Errorf("%s/%s: %w: part %s is not in the repository", target.owner, target.repo, ErrIncomplete, n)
			}
		}
	} else {
		names = partNames(target.file)
		if entry.Ref == "" {
			entry, _ = lookupFile(s.catalog(), target.owner, target.repo, target.file)
		}
		if entry.Ref != "" && len(names) == 1 {
			sizes[names[0]], sums[names[0]] = entry.Size, strings.ToLower(entry.SHA256)
		}
	}

	var progress func(Progress)
	if opts != nil {
		progress = opts.Progress
	}
	var first string
	for i, name := range names {
		f := remoteFile{
			url:    base + name,
			root:   dirs[0],
			dest:   filepath.Join(dirs[0], target.owner, target.repo, filepath.FromSlash(name)),
			size:   sizes[name],
			sha256: sums[name],
		}
		if i == 0 {
			first = f.dest
		}
		report := func(done, total int64) {
			if progress != nil {
				progress(Progress{File: f.dest, Part: i + 1, Parts: len(names), Done: done, Total: total})
			}
		}
		if err := s.download(ctx, f, report); err != nil {
			return "", err
		}
	}
	return first, nil
}

// endpoint returns the Hugging Face base URL, without a trailing slash.
func (s *Store) endpoint() (string, error) {
	e := s.Endpoint
	if e == "" {
		e = os.Getenv(EnvEndpoint)
	}
	if e == "" {
		e = DefaultEndpoint
	}
	e = strings.TrimRight(e, "/")
	u, err := url.Parse(e)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("invalid Hugging Face endpoint %q: want an http:// or https:// URL", e)
	}
	return e, nil
}

// token returns the access token, or "".
func (s *Store) token() string {
	if s.Token != "" {
		return s.Token
	}
	return os.Getenv(EnvToken)
}

// defaultClient is the client of a Store without one: the default
// transport, but giving up on a server that sends no response headers for
// a minute.
var defaultClient = sync.OnceValue(func() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = time.Minute
	return &http.Client{Transport: t}
})

// get sends a GET request for u, asking for the bytes from offset from on
// if from > 0.
func (s *Store) get(ctx context.Context, u string, from int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	ua := s.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	req.Header.Set("User-Agent", ua)
	// No transparent gzip: byte offsets must be those of the file.
	req.Header.Set("Accept-Encoding", "identity")
	if from > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(from, 10)+"-")
	}
	if tok := s.token(); tok != "" {
		// The client drops it on a redirect to another host, such as
		// Hugging Face's CDN.
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	c := s.Client
	if c == nil {
		c = defaultClient()
	}
	return c.Do(req)
}

// drain reads a little of the body of resp, so that the connection can be
// reused, and closes it.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// httpError returns the *HTTPError for resp, and closes its body.
func (s *Store) httpError(u string, resp *http.Response) *HTTPError {
	drain(resp)
	return &HTTPError{
		URL:        u,
		StatusCode: resp.StatusCode,
		Status:     resp.Status,
		Code:       resp.Header.Get("X-Error-Code"),
		TokenSent:  s.token() != "",
	}
}

// retryableStatus reports whether a request answered with code may succeed
// when tried again.
func retryableStatus(code int) bool {
	return code >= 500 || code == http.StatusTooManyRequests || code == http.StatusRequestTimeout
}

// retryBase is the wait before the first retry; it doubles with each retry.
var retryBase = 250 * time.Millisecond

// withRetries calls fn until it succeeds, returns an error it marks as not
// retryable, or has been retried s.Retries times.
func (s *Store) withRetries(ctx context.Context, fn func() (retry bool, err error)) error {
	for attempt := 0; ; attempt++ {
		retry, err := fn()
		if err == nil || !retry || attempt >= s.Retries || ctx.Err() != nil {
			return err
		}
		wait := min(retryBase<<attempt, 30*time.Second)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (retrying after: %v)", ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}

// A sibling is a file of a Hugging Face repository.
type sibling struct {
	name   string // slash-separated path in the repository
	size   int64  // or 0
	sha256 string // lower-case hex, or ""
}

// maxAPIResponse bounds the size of a Hugging Face API response.
const maxAPIResponse = 32 << 20

// repoFiles lists the files of a Hugging Face repository with
// GET /api/models/OWNER/REPO. It drops files whose names are not valid GGUF
// file names (see validRepoFile), so that a hostile response cannot make
// Pull write outside the store.
func (s *Store) repoFiles(ctx context.Context, endpoint, owner, repo string) ([]sibling, error) {
	u := endpoint + "/api/models/" + owner + "/" + repo + "?blobs=true"
	var info struct {
		Siblings []struct {
			RFilename string `json:"rfilename"`
			Size      int64  `json:"size"`
			LFS       *struct {
				SHA256 string `json:"sha256"`
				Size   int64  `json:"size"`
			} `json:"lfs"`
		} `json:"siblings"`
	}
	err := s.withRetries(ctx, func() (bool, error) {
		resp, err := s.get(ctx, u, 0)
		if err != nil {
			return ctx.Err() == nil, fmt.Errorf("listing %s/%s: %w", owner, repo, err)
		}
		if resp.StatusCode != http.StatusOK {
			return retryableStatus(resp.StatusCode), s.httpError(u, resp)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIResponse+1))
		if err != nil {
			return ctx.Err() == nil, fmt.Errorf("listing %s/%s: %w", owner, repo, err)
		}
		if len(body) > maxAPIResponse {
			return false, fmt.Errorf("listing %s/%s: response larger than %d bytes", owner, repo, maxAPIResponse)
		}
		if err := json.Unmarshal(body, &info); err != nil {
			return false, fmt.Errorf("listing %s/%s: bad response from %s: %w", owner, repo, u, err)
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	var sibs []sibling
	for _, f := range info.Siblings {
		if validRepoFile(f.RFilename) != nil {
			continue
		}
		sib := sibling{name: f.RFilename, size: f.Size}
		if f.LFS != nil {
			if sib.size <= 0 {
				sib.size = f.LFS.Size
			}
			if sum := strings.ToLower(f.LFS.SHA256); isHexSHA256(sum) {
				sib.sha256 = sum
			}
		}
		if sib.size < 0 {
			sib.size = 0
		}
		sibs = append(sibs, sib)
	}
	return sibs, nil
}

// isHexSHA256 reports whether s is 64 lower-case hex digits.
func isHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// download fetches f into f.dest, unless it is there already. When it
// fails and leaves no partial download, it also removes the directories it
// created below f.root.
func (s *Store) download(ctx context.Context, f remoteFile, report func(done, total int64)) (err error) {
	if isFile(f.dest) {
		return nil
	}
	unlock, err := lockFile(ctx, f.dest+".lock")
	if err != nil {
		return fmt.Errorf("waiting for the lock on %s: %w", f.dest, err)
	}
	defer func() {
		unlock()
		if err != nil {
			pruneDirs(f.root, filepath.Dir(f.dest))
		}
	}()
	if isFile(f.dest) { // another pull finished it while we waited
		return nil
	}
	err = s.withRetries(ctx, func() (bool, error) { return s.fetch(ctx, f, report) })
	if err != nil {
		return err
	}
	return finish(f)
}

// pruneDirs removes dir and its parents up to, but not including, root, as
// long as they are empty.
func pruneDirs(root, dir string) {
	rel, err := filepath.Rel(root, dir)
	if err != nil || !filepath.IsLocal(rel) {
		return
	}
	for ; rel != "." && rel != string(filepath.Separator); rel = filepath.Dir(rel) {
		if os.Remove(filepath.Join(root, rel)) != nil {
			return
		}
	}
}

// lockPoll is how often a pull waiting for another one's lock tries again.
const lockPoll = 50 * time.Millisecond

// lockFile takes an exclusive lock on the file at path, creating it and its
// directory, and returns a function that deletes the file and releases the
// lock. It waits for the lock until ctx is done.
//
// It uses flock(2) (LockFileEx on Windows) through github.com/gofrs/flock
// rather than a lock file created with O_EXCL, because the kernel releases
// such a lock when its holder exits, even by a crash or SIGKILL: there is no
// stale lock to detect and break, as there would be with O_EXCL, where a
// killed pull leaves a lock file that only a timeout or a process-ID check
// (unreliable across machines sharing a directory) could clear. The lock
// belongs to an open file, not a process, so it also excludes goroutines of
// one process.
//
// The holder deletes the lock file before releasing the lock, so that no
// lock files are left behind. A waiter may therefore obtain the lock on a
// file that has just been deleted; it then sees that the path no longer
// names the file it locked, and starts over. A failed pull may also remove
// the directory (see pruneDirs); the lock file is then created again.
func lockFile(ctx context.Context, path string) (func(), error) {
	for {
		fl := flock.New(path, flock.SetPermissions(0o644))
		if _, err := fl.TryLockContext(ctx, lockPoll); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					return nil, err
				}
				continue
			}
			return nil, err
		}
		held, err := fl.Stat()
		if err != nil {
			_ = fl.Unlock()
			return nil, err
		}
		cur, err := os.Stat(path)
		if err == nil && os.SameFile(held, cur) {
			return func() {
				_ = os.Remove(path)
				_ = fl.Unlock()
			}, nil
		}
		_ = fl.Unlock()
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
}

// fetch makes one attempt at downloading f into f.dest+".partial", resuming
// what is there. It creates that file only once the server has answered. It
// reports whether an error is worth another attempt.
func (s *Store) fetch(ctx context.Context, f remoteFile, report func(done, total int64)) (retry bool, err error) {
	partial := f.dest + ".partial"
	var have int64
	if st, err := os.Stat(partial); err == nil {
		have = st.Size()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if f.size > 0 && have > f.size {
		have = 0 // start over
	}

	var resp *http.Response
	total := int64(-1)
	for {
		resp, err = s.get(ctx, f.url, have)
		if err != nil {
			if ctx.Err() != nil {
				return false, fmt.Errorf("downloading %s: %w", f.url, ctx.Err())
			}
			return true, fmt.Errorf("downloading %s: %w", f.url, err)
		}
		ok := false
		switch {
		case resp.StatusCode == http.StatusOK:
			// A full response, also to a Range request the server ignored:
			// start over.
			have, total, ok = 0, resp.ContentLength, true
		case resp.StatusCode == http.StatusPartialContent && have > 0:
			start, end, size, good := parseContentRange(resp.Header.Get("Content-Range"))
			if good && start == have && (size < 0 || end == size-1) {
				total, ok = size, true
				if total < 0 && resp.ContentLength >= 0 {
					total = have + resp.ContentLength
				}
			}
		case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && have > 0:
			// Asking for the bytes after the end: done, if that end is the
			// end of the file.
			if _, _, size, good := parseContentRange(resp.Header.Get("Content-Range")); good && size == have {
				drain(resp)
				report(have, have)
				return false, nil
			}
		default:
			if resp.StatusCode == http.StatusPartialContent || resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
				drain(resp)
				return false, fmt.Errorf("downloading %s: unexpected %s to a request without Range", f.url, resp.Status)
			}
			return retryableStatus(resp.StatusCode), s.httpError(f.url, resp)
		}
		if ok {
			break
		}
		// Not the range asked for: start over without one.
		drain(resp)
		have = 0
	}
	defer resp.Body.Close()

	if f.size > 0 && total >= 0 && total != f.size {
		_ = os.Remove(partial)
		return false, &ChecksumError{URL: f.url, What: "size", Want: strconv.FormatInt(f.size, 10), Got: strconv.FormatInt(total, 10)}
	}
	fp, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return false, err
	}
	defer fp.Close()
	if err := fp.Truncate(have); err != nil {
		return false, err
	}
	if _, err := fp.Seek(have, io.SeekStart); err != nil {
		return false, err
	}
	report(have, total)
	pw := &progressWriter{w: fp, n: have, total: total, report: report}
	_, err = io.CopyBuffer(pw, resp.Body, make([]byte, 256<<10))
	if err != nil {
		if pw.err != nil {
			return false, fmt.Errorf("writing %s: %w", partial, pw.err)
		}
		if ctx.Err() != nil {
			return false, fmt.Errorf("downloading %s: %w (%d bytes kept for resuming)", f.url, ctx.Err(), pw.n)
		}
		return true, fmt.Errorf("downloading %s: %w (%d bytes kept for resuming)", f.url, err, pw.n)
	}
	if total >= 0 && pw.n != total {
		if pw.n > total {
			if err := fp.Truncate(0); err != nil {
				return false, err
			}
		}
		return true, fmt.Errorf("downloading %s: got %d bytes, want %d: %w", f.url, pw.n, total, io.ErrUnexpectedEOF)
	}
	if err := fp.Sync(); err != nil {
		return false, err
	}
	return false, fp.Close()
}

// parseContentRange parses the value of a Content-Range header,
// "bytes START-END/SIZE" or "bytes */SIZE", where SIZE may be "*". It
// returns -1 for values that are "*".
func parseContentRange(h string) (start, end, size int64, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(h), "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, sz, found := strings.Cut(strings.TrimSpace(rest), "/")
	if !found {
		return 0, 0, 0, false
	}
	size = -1
	if sz != "*" {
		n, err := strconv.ParseInt(sz, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, 0, false
		}
		size = n
	}
	if rng == "*" {
		return -1, -1, size, size >= 0
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start || size >= 0 && end >= size {
		return 0, 0, 0, false
	}
	return start, end, size, true
}

// A progressWriter writes to a file and reports the bytes written.
type progressWriter struct {
	w      io.Writer
	n      int64 // bytes in the file
	total  int64
	report func(done, total int64)
	err    error // the first write error
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	if err != nil {
		p.err = err
		return n, err
	}
	p.report(p.n, p.total)
	return n, nil
}

// finish verifies the complete download of f and moves it into place. A
// download that fails verification is deleted.
func finish(f remoteFile) error {
	partial := f.dest + ".partial"
	reject := func(err error) error {
		_ = os.Remove(partial)
		return err
	}
	st, err := os.Stat(partial)
	if err != nil {
		return err
	}
	if f.size > 0 && st.Size() != f.size {
		return reject(&ChecksumError{URL: f.url, What: "size", Want: strconv.FormatInt(f.size, 10), Got: strconv.FormatInt(st.Size(), 10)})
	}
	if f.sha256 != "" {
		sum, err := fileSHA256(partial)
		if err != nil {
			return err
		}
		if sum != f.sha256 {
			return reject(&ChecksumError{URL: f.url, What: "sha256", Want: f.sha256, Got: sum})
		}
	}
	if _, err := gguf.Open(partial); err != nil {
		return reject(fmt.Errorf("%s: not a valid GGUF file (download deleted): %w", f.url, err))
	}
	if err := os.Rename(partial, f.dest); err != nil {
		return err
	}
	syncDir(filepath.Dir(f.dest))
	return nil
}

// fileSHA256 returns the lower-case hex SHA-256 digest of the file at p.
func fileSHA256(p string) (string, error) {
	fp, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer fp.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fp); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// syncDir flushes a directory, so that a rename in it survives a crash. It
// is best effort: not every system can sync a directory.
func syncDir(dir string) {
	if runtime.GOOS == "windows" {
		return
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
