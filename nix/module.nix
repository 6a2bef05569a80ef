# NixOS module: `services.flaredb`, one FlareDB node as a systemd service.
#
#   imports = [ flaredb.nixosModules.default ];
#   services.flaredb = {
#     enable = true;
#     id = 1;
#     listen = "10.0.0.1:2479";
#     peerListen = "10.0.0.1:2480";
#     initialCluster = "1=10.0.0.1:2479@10.0.0.1:2480,2=10.0.0.2:2479@10.0.0.2:2480,3=10.0.0.3:2479@10.0.0.3:2480";
#     tls = { cert = "/run/keys/node.pem"; key = "/run/keys/node-key.pem"; trustedCa = "/run/keys/ca.pem";
#             peerCert = "/run/keys/node.pem"; peerKey = "/run/keys/node-key.pem"; peerTrustedCa = "/run/keys/ca.pem"; };
#     metricsListen = "10.0.0.1:9479";
#   };
#
# Every setting becomes a key of the node's TOML file (see the README's
# Configuration section); `settings` adds any other key (limits, Raft timing).
{ config, lib, pkgs, ... }:

let
  cfg = config.services.flaredb;
  toml = pkgs.formats.toml { };
  optionalAttr = name: value: lib.optionalAttrs (value != null) { ${name} = value; };
  nodeSettings =
    {
      id = cfg.id;
      listen = cfg.listen;
      data_dir = cfg.dataDir;
      log = cfg.logLevel;
      log_format = cfg.logFormat;
    }
    // optionalAttr "peer_listen" cfg.peerListen
    // optionalAttr "initial_cluster" cfg.initialCluster
    // optionalAttr "metrics_listen" cfg.metricsListen
    // optionalAttr "cert" cfg.tls.cert
    // optionalAttr "key" cfg.tls.key
    // optionalAttr "trusted_ca" cfg.tls.trustedCa
    // lib.optionalAttrs cfg.tls.clientCertAuth { client_cert_auth = true; }
    // optionalAttr "peer_cert" cfg.tls.peerCert
    // optionalAttr "peer_key" cfg.tls.peerKey
    // optionalAttr "peer_trusted_ca" cfg.tls.peerTrustedCa
    // cfg.settings;
  configFile = toml.generate "flaredb-${toString cfg.id}.toml" nodeSettings;
  port = addr: lib.toInt (lib.last (lib.splitString ":" addr));
  pathOrNull = lib.types.nullOr lib.types.path;
in
{
  options.services.flaredb = {
    enable = lib.mkEnableOption "a FlareDB node";

    package = lib.mkOption {
      type = lib.types.package;
      description = "The FlareDB package (flaredb-server and the flaredb CLI).";
    };

    id = lib.mkOption {
      type = lib.types.ints.positive;
      default = 1;
      description = "This node's id: unique in the cluster, never reused.";
    };

    listen = lib.mkOption {
      type = lib.types.str;
      default = "127.0.0.1:2479";
      description = "IP:PORT of the public API (and of Raft unless peerListen is set).";
    };

    peerListen = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      description = "IP:PORT of the Raft transport on its own address (required for peer TLS).";
    };

    dataDir = lib.mkOption {
      type = lib.types.str;
      default = "/var/lib/flaredb";
      description = "Data directory (created as the service's state directory when under /var/lib).";
    };

    initialCluster = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "1=10.0.0.1:2479@10.0.0.1:2480,2=10.0.0.2:2479@10.0.0.2:2480";
      description = "Members to bootstrap an empty data dir with (ID=PUBLIC[@PEER], comma-separated); null: this node alone.";
    };

    metricsListen = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      description = "IP:PORT serving Prometheus /metrics; null: off.";
    };

    logLevel = lib.mkOption {
      type = lib.types.str;
      default = "warn";
      description = "tracing filter, e.g. info or flaredb_server=debug.";
    };

    logFormat = lib.mkOption {
      type = lib.types.enum [ "text" "json" ];
      default = "text";
      description = "Log lines as text or as JSON objects (to the journal).";
    };

    tls = {
      cert = lib.mkOption { type = pathOrNull; default = null; description = "Public address certificate chain (PEM)."; };
      key = lib.mkOption { type = pathOrNull; default = null; description = "Its private key (PEM)."; };
      trustedCa = lib.mkOption { type = pathOrNull; default = null; description = "CA of client certificates and of the cluster's public certificates."; };
      clientCertAuth = lib.mkOption { type = lib.types.bool; default = false; description = "Require client certificates signed by trustedCa."; };
      peerCert = lib.mkOption { type = pathOrNull; default = null; description = "Peer (Raft) certificate (PEM); mutual TLS with peerKey and peerTrustedCa."; };
      peerKey = lib.mkOption { type = pathOrNull; default = null; description = "Its private key (PEM)."; };
      peerTrustedCa = lib.mkOption { type = pathOrNull; default = null; description = "CA every peer certificate must chain to."; };
    };

    settings = lib.mkOption {
      type = toml.type;
      default = { };
      example = { max_value_bytes = 1048576; election_timeout_ms = 500; };
      description = "More keys of the node's TOML file (limits, Raft timing, watch retention).";
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Open the public, peer and metrics ports in the firewall.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = (cfg.tls.peerCert != null) -> (cfg.peerListen != null);
        message = "services.flaredb: peer TLS needs peerListen (Raft then has its own address).";
      }
    ];

    environment.systemPackages = [ cfg.package ];

    systemd.services.flaredb = {
      description = "FlareDB node ${toString cfg.id}";
      wantedBy = [ "multi-user.target" ];
      after = [ "network-online.target" ];
      wants = [ "network-online.target" ];
      serviceConfig = {
        ExecStart = "${cfg.package}/bin/flaredb-server --config ${configFile}";
        # SIGHUP re-reads the certificate files (they are also re-read when they change).
        ExecReload = "${pkgs.coreutils}/bin/kill -HUP $MAINPID";
        # SIGTERM: a leader hands over to a caught-up voter before it stops.
        KillSignal = "SIGTERM";
        TimeoutStopSec = 30;
        Restart = "on-failure";
        RestartSec = 2;
        DynamicUser = true;
        StateDirectory = lib.mkIf (lib.hasPrefix "/var/lib/" cfg.dataDir) (lib.removePrefix "/var/lib/" cfg.dataDir);
        LimitNOFILE = 65536;
        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        ReadWritePaths = [ cfg.dataDir ];
      };
    };

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall (
      [ (port cfg.listen) ]
      ++ lib.optional (cfg.peerListen != null) (port cfg.peerListen)
      ++ lib.optional (cfg.metricsListen != null) (port cfg.metricsListen)
    );
  };
}
