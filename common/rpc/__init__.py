"""Generated gRPC stubs (scripts/gen-proto.sh); never edited by hand."""
