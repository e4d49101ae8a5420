// Package elf holds vigil's prebuilt BPF objects, one per kernel build of
// bpf/matrix, and the manifest `make elf` wrote for them. Nothing here is
// edited by hand: run `make elf`.
package elf

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
)

//go:embed manifest.json *.o
var files embed.FS

// Object describes one built object.
type Object struct {
	// Name is the matrix line's name: a kernel major.minor ("6.1") or "tp".
	Name string `json:"name"`
	// File is the object's file name in this package.
	File string `json:"file"`
	// Hooks is the hook type: "kprobe" or "tracepoint".
	Hooks string `json:"hooks"`
	// BTF names the kernel whose BTF the object was compiled against.
	BTF string `json:"btf"`
	// BTFKernel says which kernel build that BTF came from (bpf/btf/SOURCES).
	BTFKernel string `json:"btf_kernel"`
	// SourceSHA256 hashes bpf/ as it was built.
	SourceSHA256 string `json:"source_sha256"`
	// Clang is the compiler's version line.
	Clang string `json:"clang"`
	// SHA256 hashes the object file.
	SHA256 string `json:"sha256"`
}

// Manifest is elf/manifest.json.
type Manifest struct {
	Objects []Object `json:"objects"`
}

// Load returns the embedded manifest.
func Load() (*Manifest, error) {
	b, err := files.ReadFile("manifest.json")
	if err != nil {
		return nil, fmt.Errorf("reading embedded manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parsing embedded manifest: %w", err)
	}
	return &m, nil
}

// Bytes returns an embedded object's contents.
func Bytes(file string) ([]byte, error) {
	return fs.ReadFile(files, file)
}
