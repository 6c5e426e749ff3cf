// The chart renderer of deploy/check: Go's standard library only, no module requirements, so it
// builds with no network (GOPROXY=off).
module bulwark.invalid/deploy/check/render

go 1.19
