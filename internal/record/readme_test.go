package record

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeReasonTableIsTheCatalogue holds docs/records.md's table of record
// reasons to Catalogue: the same reasons, in the same order, each with its
// type and meaning.
func TestReadmeReasonTableIsTheCatalogue(t *testing.T) {
	b, err := os.ReadFile("../../docs/records.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	begin, end := strings.Index(text, "<!-- reasons:begin -->"), strings.Index(text, "<!-- reasons:end -->")
	if begin < 0 || end < begin {
		t.Fatal("docs/records.md has no <!-- reasons:begin --> ... <!-- reasons:end --> table")
	}
	row := regexp.MustCompile("^\\| `([A-Za-z]+)` \\| (Normal|Warning) \\| (.+) \\|$")
	var got []ReasonInfo
	for _, line := range strings.Split(text[begin:end], "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			got = append(got, ReasonInfo{Reason: Reason(m[1]), Type: Type(m[2]), Meaning: m[3]})
		}
	}
	if len(got) != len(Catalogue) {
		t.Errorf("docs/records.md lists %d reasons, the catalogue %d", len(got), len(Catalogue))
	}
	for i := range min(len(got), len(Catalogue)) {
		if got[i] != Catalogue[i] {
			t.Errorf("row %d: docs %+v\n        catalogue %+v", i+1, got[i], Catalogue[i])
		}
	}
}

func TestEveryReasonHasOneType(t *testing.T) {
	seen := map[Reason]bool{}
	for _, r := range Catalogue {
		if seen[r.Reason] {
			t.Errorf("%s is in the catalogue twice", r.Reason)
		}
		seen[r.Reason] = true
		if r.Type != Normal && r.Type != Warning || r.Meaning == "" {
			t.Errorf("%+v: want a type and a meaning", r)
		}
	}
	if Reason("NotInTheCatalogue").Type() != Warning || Started.Type() != Normal || ImageMissing.Type() != Warning {
		t.Error("Type must come from the catalogue, Warning for an unknown reason")
	}
}
