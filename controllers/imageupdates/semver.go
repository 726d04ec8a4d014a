package imageupdates

import (
	"strings"

	"golang.org/x/mod/semver"
)

// NewestVersion picks, among tags, the highest version above current's,
// of current's own variant: "1.25-alpine" goes to "1.27-alpine", never to
// "1.27" or "1.27-bookworm"; a pre-release ("2.0.0-rc1" has variant
// "rc1", so it is only taken by a tag of the same variant) is thereby
// never taken for a release. "" when none is higher, or current is not a
// version.
func NewestVersion(current string, tags []string) string {
	cv, variant, ok := version(current)
	if !ok {
		return ""
	}
	best, bestV := "", cv
	for _, t := range tags {
		v, tv, ok := version(t)
		if !ok || tv != variant {
			continue
		}
		if semver.Compare(v, bestV) > 0 {
			best, bestV = t, v
		}
	}
	return best
}

// version splits a tag into its semver (with a "v" before it, as
// x/mod/semver wants; "1.25" is "v1.25") and its variant (what follows the
// first "-").
func version(tag string) (v, variant string, ok bool) {
	num, variant, _ := strings.Cut(tag, "-")
	v = "v" + strings.TrimPrefix(num, "v")
	if !semver.IsValid(v) || semver.Build(v) != "" {
		return "", "", false
	}
	return v, variant, true
}
