{
  description = "FlareDB: a Raft-replicated metadata store (openraft + RocksDB, gRPC)";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    flake-utils.url = "github:numtide/flake-utils";
  };

  outputs = { self, nixpkgs, flake-utils }:
    {
      # services.flaredb (nix/module.nix); the package defaults to this flake's.
      nixosModules.default = { pkgs, lib, ... }: {
        imports = [ ./nix/module.nix ];
        services.flaredb.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
      };
    }
    // flake-utils.lib.eachDefaultSystem (system:
      let
        pkgs = import nixpkgs { inherit system; };
        # Link against nixpkgs' RocksDB instead of building the bundled C++.
        rocksdbEnv = {
          ROCKSDB_LIB_DIR = "${pkgs.rocksdb}/lib";
          ROCKSDB_INCLUDE_DIR = "${pkgs.rocksdb}/include";
        };
        flaredb = pkgs.rustPlatform.buildRustPackage (rocksdbEnv // {
          pname = "flaredb";
          version = "0.1.0";
          src = ./.;
          cargoLock.lockFile = ./Cargo.lock;
          nativeBuildInputs = [ pkgs.rustPlatform.bindgenHook pkgs.pkg-config ];
          buildInputs = [ pkgs.rocksdb pkgs.lz4 ];
          # The suite starts real server processes; run it with `nix flake check`.
          doCheck = false;
          meta.mainProgram = "flaredb-server";
        });
      in
      {
        packages = {
          default = flaredb;
          flaredb-server = flaredb;
        };

        apps = {
          # nix run .#server -- --id 1 --listen 127.0.0.1:2479 --data-dir ./flaredb-data
          server = { type = "app"; program = "${flaredb}/bin/flaredb-server"; };
          default = self.apps.${system}.server;
        };

        # Three NixOS VMs running services.flaredb (Linux only).
        checks = pkgs.lib.optionalAttrs pkgs.stdenv.isLinux {
          cluster = pkgs.testers.runNixOSTest (import ./nix/cluster-test.nix { inherit self pkgs; });
        };

        devShells.default = pkgs.mkShell (rocksdbEnv // {
          inputsFrom = [ flaredb ];
          packages = [ pkgs.cargo pkgs.rustc pkgs.clippy pkgs.rustfmt pkgs.grpcurl pkgs.clang ];
          LIBCLANG_PATH = "${pkgs.llvmPackages.libclang.lib}/lib";
        });
      });
}
