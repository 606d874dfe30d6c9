//go:build !linux

package main

func trimResident() {}
