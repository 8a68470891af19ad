module github.com/chattts-server/chattts-server/clients/go

go 1.23
