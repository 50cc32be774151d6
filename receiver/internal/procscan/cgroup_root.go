package procscan

// Cgroup2Root is the directory of the host's cgroup2 hierarchy as this process sees it: override
// when set, else found from the host's mount table under procRoot (as attribution finds it).
func Cgroup2Root(procRoot, override string) (string, error) {
	fs, err := detectCgroupFS(procRoot, override)
	return fs.dir, err
}
