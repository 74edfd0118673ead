// Package deploytest checks FARM's deployment files against the code they deploy: cloudbuild.yaml
// (every file, command and substitution a step refers to exists) and, on the offline terraform
// plan that .ci/terraform.sh produces, the terraform (entry points, settings, secrets, tables).
package deploytest

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"go/ast"
	"go/token"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Repo is what a build step may refer to in the repository.
type Repo struct {
	Root         string          // the repository's root directory
	MakeTargets  map[string]bool // targets of the Makefile
	FarmCommands map[string]bool // subcommands of cmd/farm (`go run ./cmd/farm NAME`)
}

// LoadRepo reads the Makefile's targets and cmd/farm's subcommands of the repository at root.
func LoadRepo(root string) (*Repo, error) {
	targets, err := makeTargets(filepath.Join(root, "Makefile"))
	if err != nil {
		return nil, err
	}
	cmds, err := farmCommands(filepath.Join(root, "cmd", "farm"))
	if err != nil {
		return nil, err
	}
	return &Repo{Root: root, MakeTargets: targets, FarmCommands: cmds}, nil
}

var makeTarget = regexp.MustCompile(`^([A-Za-z0-9_.-]+)\s*:([^=]|$)`)

func makeTargets(file string) (map[string]bool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read the Makefile: %w", err)
	}
	targets := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if m := makeTarget.FindStringSubmatch(sc.Text()); m != nil && !strings.HasPrefix(m[1], ".") {
			targets[m[1]] = true
		}
	}
	return targets, sc.Err()
}

// farmCommands reads the names of cmd/farm's subcommands from its commands() function: the
// first string of each element of the slice it returns.
func farmCommands(dir string) (map[string]bool, error) {
	fset := token.NewFileSet()
	files, err := parseNonTestFiles(fset, dir, 0)
	if err != nil {
		return nil, fmt.Errorf("parse cmd/farm: %w", err)
	}
	cmds := map[string]bool{}
	for _, f := range files {
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Name.Name != "commands" || fn.Recv != nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				lit, ok := n.(*ast.CompositeLit)
				if !ok || len(lit.Elts) == 0 {
					return true
				}
				if s, ok := lit.Elts[0].(*ast.BasicLit); ok && s.Kind == token.STRING {
					if name, err := strconv.Unquote(s.Value); err == nil {
						cmds[name] = true
					}
				}
				return true
			})
		}
	}
	if len(cmds) == 0 {
		return nil, fmt.Errorf("found no subcommands in %s: expected a func commands() listing them", dir)
	}
	return cmds, nil
}

// cloudBuild is the part of the Cloud Build configuration schema FARM uses. Decoding is strict:
// a misspelt key is an error, not an ignored step setting.
type cloudBuild struct {
	Steps         []buildStep       `yaml:"steps"`
	Substitutions map[string]string `yaml:"substitutions"`
	Options       struct {
		MachineType string   `yaml:"machineType"`
		Logging     string   `yaml:"logging"`
		Env         []string `yaml:"env"`
		DynamicSubs bool     `yaml:"dynamicSubstitutions"`
	} `yaml:"options"`
	Timeout        string `yaml:"timeout"`
	ServiceAccount string `yaml:"serviceAccount"`
}

type buildStep struct {
	ID         string   `yaml:"id"`
	Name       string   `yaml:"name"`
	Entrypoint string   `yaml:"entrypoint"`
	Args       []string `yaml:"args"`
	Dir        string   `yaml:"dir"`
	Env        []string `yaml:"env"`
	WaitFor    []string `yaml:"waitFor"`
	Script     string   `yaml:"script"`
	Timeout    string   `yaml:"timeout"`
}

// builtinSubstitutions are the ones Cloud Build provides.
var builtinSubstitutions = map[string]bool{
	"PROJECT_ID": true, "PROJECT_NUMBER": true, "BUILD_ID": true, "LOCATION": true,
	"TRIGGER_NAME": true, "TRIGGER_BUILD_CONFIG_PATH": true, "COMMIT_SHA": true, "REVISION_ID": true,
	"SHORT_SHA": true, "REPO_NAME": true, "REPO_FULL_NAME": true, "BRANCH_NAME": true,
	"TAG_NAME": true, "REF_NAME": true, "SERVICE_ACCOUNT_EMAIL": true, "SERVICE_ACCOUNT": true,
}

// substitution matches what Cloud Build substitutes: $NAME or ${NAME}; $$ is a literal dollar.
var substitution = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

var userSubstitution = regexp.MustCompile(`^_[A-Z0-9_]+$`)

// CheckCloudBuild returns every problem of the Cloud Build configuration data against repo: an
// unknown key, a reference to a substitution that is neither built in nor defined, a defined
// substitution no step uses, a Make target, cmd/farm subcommand, script or file that does not
// exist, or a step waiting for a step that does not come before it.
func CheckCloudBuild(data []byte, repo *Repo) []error {
	var cb cloudBuild
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cb); err != nil {
		return []error{fmt.Errorf("cloudbuild.yaml does not decode: %w", err)}
	}
	c := &buildChecker{repo: repo, cb: &cb, used: map[string]bool{}, produced: map[string]bool{}}
	c.checkSubstitutionNames()
	c.substitutions("options.env", strings.Join(cb.Options.Env, "\n"))
	if len(cb.Steps) == 0 {
		c.fail("no steps")
	}
	seen := map[string]bool{}
	for i, s := range cb.Steps {
		c.step(i, s, seen)
		if s.ID != "" {
			seen[s.ID] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cb.Substitutions)) {
		if !c.used[name] {
			c.fail("substitution %s is defined but no step uses it", name)
		}
	}
	return c.problems
}

type buildChecker struct {
	repo     *Repo
	cb       *cloudBuild
	used     map[string]bool // substitutions referred to
	produced map[string]bool // files an earlier step writes, relative to the repository root
	problems []error
}

func (c *buildChecker) fail(format string, args ...any) {
	c.problems = append(c.problems, fmt.Errorf(format, args...))
}

func (c *buildChecker) checkSubstitutionNames() {
	for name := range c.cb.Substitutions {
		if !userSubstitution.MatchString(name) {
			c.fail("substitution %s: user-defined substitutions must match _[A-Z0-9_]+", name)
		}
	}
}

// substitutions records and checks every substitution referred to in text.
func (c *buildChecker) substitutions(where, text string) {
	for _, m := range substitution.FindAllStringSubmatch(text, -1) {
		name := m[1] + m[2]
		if name == "" {
			continue // $$
		}
		c.used[name] = true
		if _, defined := c.cb.Substitutions[name]; !defined && !builtinSubstitutions[name] {
			c.fail("%s refers to $%s, which is neither a built-in substitution nor defined under substitutions (write $$ for a shell variable)", where, name)
		}
	}
}

func (c *buildChecker) step(i int, s buildStep, before map[string]bool) {
	where := fmt.Sprintf("step %d (%s)", i+1, cmp.Or(s.ID, s.Name))
	if s.Name == "" {
		c.fail("%s has no builder image (name)", where)
	}
	if s.ID != "" && before[s.ID] {
		c.fail("%s: id %q is used twice", where, s.ID)
	}
	for _, w := range s.WaitFor {
		if w != "-" && !before[w] {
			c.fail("%s waits for %q, which is not the id of an earlier step", where, w)
		}
	}
	all := append([]string{s.Name, s.Entrypoint, s.Dir, s.Script}, s.Args...)
	c.substitutions(where, strings.Join(append(all, s.Env...), "\n"))
	if s.Dir != "" && !c.exists(s.Dir) {
		c.fail("%s runs in dir %s, which does not exist", where, s.Dir)
	}
	for _, cmd := range stepCommands(s) {
		c.command(where, s.Dir, cmd)
	}
}

// stepCommands returns the commands a step runs, each as its words: the entrypoint with its
// arguments, or the commands of a `sh -c` / `bash -c` script or of script.
func stepCommands(s buildStep) [][]string {
	switch {
	case s.Script != "":
		return shellCommands(s.Script)
	case (s.Entrypoint == "sh" || s.Entrypoint == "bash") && len(s.Args) >= 2 && strings.HasPrefix(s.Args[0], "-") && strings.Contains(s.Args[0], "c"):
		return shellCommands(s.Args[1])
	case s.Entrypoint != "":
		return [][]string{append([]string{s.Entrypoint}, s.Args...)}
	}
	return [][]string{s.Args}
}

// command checks one command's references.
func (c *buildChecker) command(where, dir string, words []string) {
	if len(words) == 0 {
		return
	}
	switch words[0] {
	case "echo", "printf", "exit", "test", "[", "fi", "done":
		return // messages and conditions, not references
	case "make":
		for _, t := range words[1:] {
			if !strings.HasPrefix(t, "-") && !strings.Contains(t, "=") && !c.repo.MakeTargets[t] {
				c.fail("%s runs `make %s`, but the Makefile has no target %s", where, t, t)
			}
		}
		return
	case "go":
		if len(words) >= 4 && words[1] == "run" && path.Clean(words[2]) == "cmd/farm" {
			if sub := words[3]; !c.repo.FarmCommands[sub] {
				c.fail("%s runs `go run ./cmd/farm %s`, but cmd/farm has no subcommand %s", where, sub, sub)
			}
		}
	}
	if strings.Contains(words[0], "/") && !c.exists(path.Join(dir, words[0])) {
		c.fail("%s runs %s, which does not exist", where, words[0])
	}
	for i, w := range words[1:] {
		if isOutputFlag(words[i]) { // words[i] precedes w
			c.produced[path.Join(dir, w)] = true
			continue
		}
		flag, value, _ := cutLast(w, "=")
		if isOutputFlag(flag) {
			c.produced[path.Join(dir, value)] = true
			continue
		}
		if p := value; looksLikePath(p) && !c.exists(path.Join(dir, p)) && !c.produced[path.Join(dir, p)] {
			c.fail("%s refers to %s, which does not exist and no earlier step writes", where, p)
		}
	}
}

func isOutputFlag(w string) bool { return w == "-o" || w == "-out" || w == "--out" || w == "--output" }

// cutLast splits w at the last sep: "-var=a=../b" gives ("-var=a", "../b"). Without sep the whole
// word is the value.
func cutLast(w, sep string) (before, after string, found bool) {
	i := strings.LastIndex(w, sep)
	if i < 0 {
		return "", w, false
	}
	return w[:i], w[i+len(sep):], true
}

// looksLikePath reports whether a word names a file of the repository: it has a slash, no
// substitution, is not a URL, an absolute path or a Go package pattern.
func looksLikePath(w string) bool {
	switch {
	case !strings.Contains(w, "/"), strings.Contains(w, "$"), strings.Contains(w, "://"),
		strings.HasPrefix(w, "/"), strings.Contains(w, "..."), strings.HasPrefix(w, "-"):
		return false
	}
	return true
}

func (c *buildChecker) exists(rel string) bool {
	_, err := os.Stat(filepath.Join(c.repo.Root, filepath.FromSlash(path.Clean(rel))))
	return err == nil
}

// shellCommands splits a POSIX shell script into simple commands and their words: enough for
// the scripts of a build file (quotes, escapes, comments, ; && || | and line breaks; no
// substitutions or here-documents).
func shellCommands(script string) [][]string {
	var cmds [][]string
	var words []string
	var cur strings.Builder
	inWord := false
	endWord := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	endCmd := func() {
		endWord()
		if len(words) > 0 {
			cmds = append(cmds, words)
			words = nil
		}
	}
	for i := 0; i < len(script); i++ {
		ch := script[i]
		switch {
		case ch == '\\' && i+1 < len(script):
			i++
			if script[i] != '\n' {
				cur.WriteByte(script[i])
				inWord = true
			}
		case ch == '\'':
			j := strings.IndexByte(script[i+1:], '\'')
			if j < 0 {
				j = len(script) - i - 1
			}
			cur.WriteString(script[i+1 : i+1+j])
			inWord = true
			i += j + 1
		case ch == '"':
			inWord = true
			for i++; i < len(script) && script[i] != '"'; i++ {
				if script[i] == '\\' && i+1 < len(script) {
					i++
				}
				cur.WriteByte(script[i])
			}
		case ch == '#' && !inWord:
			for i < len(script) && script[i] != '\n' {
				i++
			}
			endCmd()
		case ch == ';' || ch == '\n' || ch == '&' || ch == '|' || ch == '(' || ch == ')':
			endCmd()
		case ch == '>' || ch == '<':
			endWord()
			// A redirection's target is not a reference to check: skip it (and an fd like &2).
			for i+1 < len(script) && (script[i+1] == '>' || script[i+1] == '&' || script[i+1] == ' ') {
				i++
			}
			for i+1 < len(script) && !strings.ContainsRune(" \t\n;&|", rune(script[i+1])) {
				i++
			}
		case ch == ' ' || ch == '\t':
			endWord()
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	endCmd()
	// Keywords that open a command list are not commands themselves.
	out := cmds[:0]
	for _, w := range cmds {
		for len(w) > 0 && slices.Contains([]string{"if", "elif", "then", "else", "while", "until", "do", "{", "}", "!"}, w[0]) {
			w = w[1:]
		}
		if len(w) > 0 {
			out = append(out, w)
		}
	}
	return out
}
