// A device getting and using a token with golang.org/x/oauth2/clientcredentials, configured
// the way the published system's Go device client is (Scopes: ["all"], the library's own
// client authentication probe). Driven by tests/test_clients.py; built in GOPATH mode
// against Debian's golang-golang-x-oauth2-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go run tests/clients/go/clientcredentials.go
//
// Input (environment only; a secret on the command line shows up in ps):
// BIOWEB_URL, BIOWEB_CLIENT_ID, BIOWEB_CLIENT_SECRET, BIOWEB_DEVICE_ID.
// Output: one JSON line on standard output. Exit status 0 only when a token came and the
// device read answered 200 with its own id.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

type report struct {
	Client       string `json:"client"`
	OK           bool   `json:"ok"`
	Stage        string `json:"stage"`
	TokenType    string `json:"token_type,omitempty"`
	RefreshToken bool   `json:"refresh_token"`
	Scope        string `json:"scope,omitempty"`
	Status       int    `json:"status,omitempty"`
	DeviceID     int64  `json:"device_id,omitempty"`
	Error        string `json:"error,omitempty"`
	Detail       string `json:"detail,omitempty"`
}

func emit(r report) {
	line, _ := json.Marshal(r)
	fmt.Println(string(line))
	if !r.OK {
		os.Exit(1)
	}
}

func main() {
	r := report{Client: "go golang.org/x/oauth2/clientcredentials", Stage: "config"}
	env := map[string]string{}
	for _, name := range []string{"BIOWEB_URL", "BIOWEB_CLIENT_ID", "BIOWEB_CLIENT_SECRET", "BIOWEB_DEVICE_ID"} {
		if env[name] = os.Getenv(name); env[name] == "" {
			r.Error, r.Detail = "config", name+" is not set"
			emit(r)
		}
	}
	deviceID, err := strconv.ParseInt(env["BIOWEB_DEVICE_ID"], 10, 64)
	if err != nil {
		r.Error, r.Detail = "config", "BIOWEB_DEVICE_ID: "+err.Error()
		emit(r)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := clientcredentials.Config{
		ClientID:     env["BIOWEB_CLIENT_ID"],
		ClientSecret: env["BIOWEB_CLIENT_SECRET"],
		TokenURL:     env["BIOWEB_URL"] + "/token",
		Scopes:       []string{"all"},
	}
	// cfg.Client(ctx) is oauth2.NewClient(ctx, cfg.TokenSource(ctx)); the token source is
	// taken apart here only to report what the token endpoint answered.
	source := cfg.TokenSource(ctx)
	r.Stage = "token"
	token, err := source.Token()
	if err != nil {
		r.Error, r.Detail = "token_request_failed", err.Error()
		var failed *oauth2.RetrieveError
		if errors.As(err, &failed) {
			r.Status = failed.Response.StatusCode
			var body struct {
				Error            string `json:"error"`
				ErrorDescription string `json:"error_description"`
			}
			if json.Unmarshal(failed.Body, &body) == nil && body.Error != "" {
				r.Error, r.Detail = body.Error, body.ErrorDescription
			}
		}
		emit(r)
	}
	r.TokenType = token.Type()
	r.RefreshToken = token.RefreshToken != ""
	r.Scope, _ = token.Extra("scope").(string)

	r.Stage = "read"
	client := oauth2.NewClient(ctx, source)
	response, err := client.Get(fmt.Sprintf("%s/api/v1/device/%d", env["BIOWEB_URL"], deviceID))
	if err != nil {
		r.Error, r.Detail = "read_failed", err.Error()
		emit(r)
	}
	defer response.Body.Close()
	r.Status = response.StatusCode
	body, err := io.ReadAll(response.Body)
	if err != nil {
		r.Error, r.Detail = "read_failed", err.Error()
		emit(r)
	}
	if response.StatusCode != http.StatusOK {
		r.Error, r.Detail = "unexpected_status", string(body)
		emit(r)
	}
	var device struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(body, &device); err != nil {
		r.Error, r.Detail = "bad_body", err.Error()
		emit(r)
	}
	r.DeviceID = device.ID
	r.OK = device.ID == deviceID && r.TokenType == "Bearer" && !r.RefreshToken
	if !r.OK {
		r.Error = "unexpected_answer"
	}
	emit(r)
}
