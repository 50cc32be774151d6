module github.com/podnet/podnet

go 1.26
