package main

func run() { var n int = "not a number"; _ = n }
