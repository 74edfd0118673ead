package deploytest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// repoRoot is the repository's root: tests run in their package's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestCloudBuildYAMLRefersOnlyToWhatExists(t *testing.T) {
	root := repoRoot(t)
	repo, err := LoadRepo(root)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "cloudbuild.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range CheckCloudBuild(data, repo) {
		t.Error(p)
	}
}

func TestLoadRepoReadsTargetsAndSubcommands(t *testing.T) {
	repo, err := LoadRepo(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	// What cloudbuild.yaml and the README rely on.
	for _, target := range []string{"test", "package", "tf-validate"} {
		if !repo.MakeTargets[target] {
			t.Errorf("Makefile target %s not found; have %v", target, repo.MakeTargets)
		}
	}
	if !repo.FarmCommands["package"] {
		t.Errorf("cmd/farm subcommand package not found; have %v", repo.FarmCommands)
	}
}

// The checker itself: each broken configuration must be reported, naming what is wrong.
func TestCheckCloudBuildFindsBrokenReferences(t *testing.T) {
	root := t.TempDir()
	for name, content := range map[string]string{
		"Makefile":          ".PHONY: test\ntest:\n\tgo test ./...\nVAR := x\n",
		"cmd/farm/main.go":  "package main\n\nfunc commands() []command {\n\treturn []command{{\"serve\", \"s\", nil}, {\"package\", \"p\", nil}}\n}\n",
		"scripts/deploy.sh": "#!/bin/sh\n",
		"terraform/main.tf": "",
	} {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repo, err := LoadRepo(root)
	if err != nil {
		t.Fatal(err)
	}
	if repo.MakeTargets["VAR"] || repo.MakeTargets[".PHONY"] {
		t.Errorf("variables and special targets read as targets: %v", repo.MakeTargets)
	}

	const good = `
steps:
  - id: test
    name: golang
    entrypoint: make
    args: [test]
  - id: package
    name: golang
    entrypoint: go
    args: [run, ./cmd/farm, package, -o, dist/farm-source.zip]
  - id: deploy
    name: hashicorp/terraform
    dir: terraform
    entrypoint: sh
    waitFor: [package]
    args:
      - -euc
      - |
        # a comment naming no/such/file
        if [ -z "${_BUCKET}" ]; then echo "set _BUCKET" >&2; exit 1; fi
        export DIR=$$HOME/x
        ../scripts/deploy.sh -var=archive=../dist/farm-source.zip $PROJECT_ID \
          --state "${_BUCKET}"
substitutions:
  _BUCKET: ""
`
	if problems := CheckCloudBuild([]byte(good), repo); len(problems) > 0 {
		t.Fatalf("a correct configuration was refused: %v", problems)
	}

	tests := []struct {
		name, old, new, want string
	}{
		{"unknown make target", "args: [test]", "args: [tests]", "no target tests"},
		{"unknown farm subcommand", "./cmd/farm, package,", "./cmd/farm, pack,", "no subcommand pack"},
		{"missing script", "../scripts/deploy.sh", "../scripts/deploy-all.sh", "scripts/deploy-all.sh, which does not exist"},
		{"missing file in a flag", "-var=archive=../dist/farm-source.zip", "-var=archive=../dist/farm.zip", "../dist/farm.zip, which does not exist"},
		{"missing step dir", "dir: terraform", "dir: infra", "dir infra, which does not exist"},
		{"undefined substitution", "$PROJECT_ID", "$_PROJECT", "$_PROJECT, which is neither"},
		{"shell variable without $$", "$$HOME", "$HOME", "$HOME, which is neither"},
		{"unused substitution", `_BUCKET: ""`, "_BUCKET: \"\"\n  _REGION: europe-west1", "_REGION is defined but no step uses it"},
		{"badly named substitution", "_BUCKET: \"\"", "_BUCKET: \"\"\n  REGION: x", "REGION: user-defined substitutions must match"},
		{"misspelt key", "    entrypoint: make", "    entrypiont: make", "does not decode"},
		{"wait for a later step", "waitFor: [package]", "waitFor: [publish]", `waits for "publish"`},
		{"file written only later", "entrypoint: make\n    args: [test]", "entrypoint: cat\n    args: [dist/farm-source.zip]", "dist/farm-source.zip, which does not exist and no earlier step writes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(good, tt.old) {
				t.Fatalf("test case edits %q, which the configuration lacks", tt.old)
			}
			broken := strings.Replace(good, tt.old, tt.new, 1)
			problems := CheckCloudBuild([]byte(broken), repo)
			if !slices.ContainsFunc(problems, func(err error) bool { return strings.Contains(err.Error(), tt.want) }) {
				t.Fatalf("problems %v; want one mentioning %q", problems, tt.want)
			}
		})
	}
}

func TestShellCommands(t *testing.T) {
	script := "if [ -z \"$X\" ]; then\n  echo 'a; b' >&2 # note\n  exit 1\nfi\nterraform init \\\n  -backend-config=\"bucket=b c\" && make test | tee out.log\n"
	got := shellCommands(script)
	want := [][]string{
		{"[", "-z", "$X", "]"},
		{"echo", "a; b"},
		{"exit", "1"},
		{"fi"},
		{"terraform", "init", "-backend-config=bucket=b c"},
		{"make", "test"},
		{"tee", "out.log"},
	}
	if !slices.EqualFunc(got, want, slices.Equal[[]string]) {
		t.Fatalf("shellCommands:\n got %q\nwant %q", got, want)
	}
}
