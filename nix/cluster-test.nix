# A three-node FlareDB cluster in NixOS VMs (`nix flake check` runs it as
# checks.<system>.cluster): the nodes bootstrap from services.flaredb, a
# write through one node is read through another, and the cluster keeps
# taking writes after the leader's service is stopped.
{ self, pkgs }:

let
  ip = n: "192.168.1.${toString n}";
  spec = pkgs.lib.concatMapStringsSep "," (n: "${toString n}=${ip n}:2479@${ip n}:2480") [ 1 2 3 ];
  node = n: { ... }: {
    imports = [ self.nixosModules.default ];
    services.flaredb = {
      enable = true;
      package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
      id = n;
      listen = "${ip n}:2479";
      peerListen = "${ip n}:2480";
      initialCluster = spec;
      metricsListen = "${ip n}:9479";
      openFirewall = true;
    };
  };
in
{
  name = "flaredb-cluster";
  nodes = { node1 = node 1; node2 = node 2; node3 = node 3; };
  testScript = ''
    start_all()
    for m in (node1, node2, node3):
        m.wait_for_unit("flaredb.service")
    ep = "${ip 1}:2479,${ip 2}:2479,${ip 3}:2479"
    node1.wait_until_succeeds(f"flaredb -e {ep} status", timeout=60)
    node1.succeed(f"flaredb -e ${ip 1}:2479 put /k v1")
    node3.succeed(f"flaredb -e ${ip 3}:2479 get /k | grep v1")
    node2.succeed("curl -sf http://${ip 2}:9479/metrics | grep flaredb_raft_term")
    import json
    rows = json.loads(node1.succeed(f"flaredb -e {ep} -o json status"))
    leader = next(r["id"] for r in rows if r.get("role") == "leader")
    machines = {1: node1, 2: node2, 3: node3}
    machines[leader].succeed("systemctl stop flaredb")
    rest = [n for n in (1, 2, 3) if n != leader]
    survivors = ",".join(f"192.168.1.{n}:2479" for n in rest)
    machines[rest[0]].wait_until_succeeds(f"flaredb -e {survivors} put /k v2", timeout=30)
    machines[rest[1]].succeed(f"flaredb -e {survivors} get /k | grep v2")
  '';
}
