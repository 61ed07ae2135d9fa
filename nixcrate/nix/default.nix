# nixcrate's Nix library: build a Cargo workspace with crane from the data in ./workspace.nix.
#
# nixcrate ships this file verbatim (see NIXCRATE_LIB_VERSION below) and `nixcrate init`
# rewrites it with the rest of this directory; your flake.nix calls it:
#
#   workspace = import ./nix/nixcrate { inherit pkgs crane; };
#   packages = workspace.packages;  apps = workspace.apps;  checks = workspace.checks;
#   devShells.default = workspace.devShell;
#
# What it builds, and why it is built that way:
#
# - One deps-only closure for the services (`deployCargoArtifacts`) and one for the Lambda
#   handlers (`lambdaDeployCargoArtifacts`). Every package starts from its closure's target/
#   directory and compiles only the workspace's own crates.
# - A package's source is the workspace manifests, the lock and the crates it compiles, nothing
#   else: editing one member changes only the derivations that compile it.
# - The closures' source is the manifests and the lock only, with the workspace's own versions
#   set to 0.0.0: a release bump leaves the closures (and every compiled dependency) as they were.
#
# NIXCRATE_LIB_VERSION = 2
{
  pkgs,
  # The crane flake input (github:ipetkov/crane).
  crane ? null,
  # Or your own crane library, used as it is: e.g. with a fenix or rust-overlay toolchain,
  #   craneLib = (crane.mkLib pkgs).overrideToolchain (p: fenix.packages.${p.system}.stable.toolchain);
  # It then decides the toolchain (a rust-toolchain.toml is yours to honour in it).
  craneLib ? null,
  # The rust-overlay flake input, needed only when the workspace pins a toolchain file.
  rust-overlay ? null,
  # nixcrate itself (its flake's packages.default), for the dev shell.
  nixcrate ? null,
  # The workspace root: this directory is <root>/nix/nixcrate.
  src ? ../..,
  # What nixcrate read from the workspace (generated; see the file's own comments).
  workspace ? import ./workspace.nix { inherit pkgs; },
}@args:
let
  inherit (pkgs) lib;
  ws = workspace;

  # ------------------------------------------------------------------------ the workspace

  lockFile = builtins.fromTOML (builtins.readFile (at "Cargo.lock"));
  # The workspace's own packages (the lock entries without a source) and their versions.
  localVersions = lib.listToAttrs (
    map (p: lib.nameValuePair p.name p.version) (lib.filter (p: !(p ? source)) lockFile.package)
  );

  # Members built and checked: excluded ones (nixcrate.toml `exclude`) and path crates outside
  # cargo's members (workspace.exclude) have no kind, and a library the build machine cannot
  # build (a wasm cdylib, a Python extension) is `leftOut`.
  members = lib.filterAttrs (_: c: c ? kind && !(c.leftOut or false)) ws.crates;
  # Services, and libraries no crate depends on (`package = true`): one buildPackage each on
  # the services' closure.
  services = lib.filterAttrs (_: m: m.kind == "service" || m.package or false) members;
  lambdas = lib.filterAttrs (_: m: m.kind == "lambda") members;

  # What every cargo command of a member gets: `--locked -p <name>`, then its settings. Each
  # word is quoted for the shell: a setting reaches cargo as the words nixcrate.toml holds,
  # never as shell code.
  cargoArgs =
    name:
    let
      m = members.${name};
    in
    lib.escapeShellArgs (
      [
        "--locked"
        "-p"
        name
      ]
      ++ lib.optionals (m.features or [ ] != [ ]) [
        "--features"
        (lib.concatStringsSep "," m.features)
      ]
      ++ m.cargoExtraArgs or [ ]
    );

  # cargo-zigbuild's target: the triple, then the glibc the handlers link against.
  triples = {
    x86_64 = "x86_64-unknown-linux-gnu";
    arm64 = "aarch64-unknown-linux-gnu";
  };
  zigTarget = name: "${triples.${lambdas.${name}.arch}}.${ws.closures.lambdas.glibc}";

  # ------------------------------------------------------------------------ toolchain

  # Alternate and sparse registries ([registries] of nixcrate.toml), by name: crane downloads
  # a crate from the `dl` of the registry its lock entry names (lib/urlForCargoPackage.nix
  # looks the source up in crateRegistries), and only knows crates.io's by itself.
  registries = ws.registries or { };
  craneLib =
    if registries == { } then
      craneLibOf
    else
      craneLibOf.appendCrateRegistries (
        lib.mapAttrsToList (
          _: r:
          craneLibOf.registryFromDownloadUrl {
            inherit (r) dl;
            indexUrl = r.source;
            registryPrefix = if lib.hasPrefix "sparse+" r.source then "sparse+" else "registry+";
          }
        ) registries
      );
  # cargo in the build finds a `registry = "<name>"` dependency's index by its name.
  registryEnv = lib.mapAttrs' (_: r: lib.nameValuePair r.indexVariable r.index) registries;

  craneLibOf =
    if args.craneLib or null != null then
      args.craneLib
    else if crane == null then
      throw "nixcrate: pass the crane flake input (or your own craneLib) to ./nix/nixcrate"
    else if ws.toolchain == null then
      crane.mkLib pkgs
    else if rust-overlay == null then
      throw "nixcrate: ${ws.toolchain.file} pins a toolchain: pass the rust-overlay flake input to ./nix/nixcrate"
    else
      # Exactly the toolchain the file pins, plus the std of every target a handler links for
      # and, for the checks, clippy and rustfmt.
      (crane.mkLib pkgs).overrideToolchain (
        p:
        ((rust-overlay.lib.mkRustBin { } p).fromRustupToolchainFile (at ws.toolchain.file)).override (old: {
          targets = old.targets ++ ws.toolchain.extraTargets;
          extensions = old.extensions ++ ws.toolchain.extraComponents;
        })
      );

  # ------------------------------------------------------------------------ sources

  # The Cargo.toml of another repository's workspace root that crates patched in inherit from
  # (`shim = { workspace = true }`): cargo reads it with them, so it goes wherever they go.
  inherit (ws) patchManifests;

  # A path under the workspace root, and one under a crate's directory.
  at = rel: if rel == "." then src else src + "/${rel}";
  inCrate = crate: rel: at (if crate.path == "." then rel else "${crate.path}/${rel}");

  # Cargo loads every manifest of the workspace even when it builds a single package, so every
  # source has them. Cargo.lock comes apart, as crane's `cargoLock` (see buildArgs below).
  manifests = lib.fileset.unions (
    [
      (at "Cargo.toml")
    ]
    ++ map (c: inCrate c "Cargo.toml") (lib.attrValues ws.crates)
    ++ map at ws.cargoConfigs
    ++ map (p: at "${p}/Cargo.toml") ws.patchPaths
  );

  # What a crate puts into a source: the paths its `src` lists (its code, or its whole
  # directory when a build script may read anything; nixcrate computes them, see workspace.nix)
  # and, with `checks`, its `checkSrc` (what its own tests, benches and examples read), minus
  # the crates nested in its directory. A listed path the checkout lacks (a gitignored `.env`
  # a literal names, say) is skipped: the build reads it only if it is there.
  crateFiles =
    {
      name,
      checks ? false,
    }:
    let
      crate = ws.crates.${name};
      paths = crate.src ++ lib.optionals checks (crate.checkSrc or [ ]);
      files = lib.fileset.unions (map (p: lib.fileset.maybeMissing (at p)) paths);
    in
    if crate.exclude or [ ] == [ ] then
      files
    else
      lib.fileset.difference files (
        lib.fileset.unions (map (p: lib.fileset.maybeMissing (at p)) crate.exclude)
      );

  # The in-tree crates a member compiles: itself and its workspace dependencies, transitively
  # (with `dev = true`, its dev-dependencies too, as its tests compile them).
  compiledBy =
    {
      member,
      dev ? false,
    }:
    map (x: x.key) (
      builtins.genericClosure {
        startSet = map (key: { inherit key; }) (
          [ member ] ++ lib.optionals dev (ws.crates.${member}.devDeps or [ ])
        );
        operator = { key }: map (dep: { key = dep; }) (ws.crates.${key}.deps or [ ]);
      }
    );

  # A source holding the manifests plus the given crates and files, nothing else: `checked`
  # crates bring what their own checks read too. Crates the workspace patches in ([patch],
  # [replace]) go into every source: any package may compile them.
  sourceOf =
    {
      crates,
      checked ? [ ],
      extra ? [ ],
    }:
    lib.fileset.toSource {
      root = src;
      fileset = lib.fileset.unions (
        [ manifests ]
        ++ map (
          name:
          crateFiles {
            inherit name;
            checks = lib.elem name checked;
          }
        ) crates
        ++ map at (extra ++ ws.patchPaths ++ patchManifests)
      );
    };

  # Cargo loads every member's manifest, and a manifest needs the files of the targets it
  # finds by convention, of its declared tests, examples and benches, and its build script.
  # A source leaves out the crates it does not compile and the tests, benches and examples of
  # those it does (a package builds none of them): each such file missing is created empty
  # (explicit lib and bin paths are not checked until cargo compiles that crate).
  stubFiles = lib.concatLists (
    lib.mapAttrsToList (
      _: c: map (s: if c.path == "." then s else "${c.path}/${s}") (c.stubs or [ ])
    ) ws.crates
  );
  stubTargets = lib.optionalString (stubFiles != [ ]) ''
    for stub in ${lib.escapeShellArgs stubFiles}; do
      [ -e "$stub" ] || { mkdir -p "$(dirname "$stub")"; : > "$stub"; }
    done
  '';

  # The source of a package or check compiling these crates, and the stubs for the rest.
  packageSource =
    {
      crates,
      checked ? [ ],
      extra ? [ ],
    }:
    {
      src = sourceOf { inherit crates checked extra; };
      postPatch = stubTargets;
    };

  # A closure built in another sandbox can carry CMake configure state naming a compiler
  # wrapper path missing from this one ("is not a full path to an existing compiler tool"):
  # drop it, so a build script that re-runs reconfigures cleanly.
  removeStaleCmakeState = ''
    find "''${CARGO_TARGET_DIR:-target}" -name CMakeCache.txt -type f -delete 2>/dev/null || true
  '';

  # ------------------------------------------------------------------------ closures' source

  # The closures are built from crane's dummy source (manifests, lock, empty targets) with the
  # workspace's own versions set to 0.0.0, in the manifests and in the lock alike: a release
  # bump then changes no closure (https://github.com/ipetkov/crane/issues/445).
  # Only the workspace's manifests go in: a stray Cargo.toml elsewhere in the tree (a project
  # template with placeholders, say) is not TOML crane can read, nor anything cargo loads.
  # `names` are the in-tree crates of one snapshot of the workspace (this one, or the base
  # below): { crates = <attribute set by crate name>; renamed = <dependency keys>; }.

  localNames = {
    inherit (ws) crates;
    renamed = ws.renamedDependencies;
  };

  zeroDependency =
    names: dep:
    let
      words = lib.splitString " " dep;
    in
    if lib.length words == 2 && names.crates ? ${lib.head words} then "${lib.head words} 0.0.0" else dep;
  zeroPackage =
    names: p:
    p
    // lib.optionalAttrs (!(p ? source) && names.crates ? ${p.name}) { version = "0.0.0"; }
    // lib.optionalAttrs (p ? dependencies) { dependencies = map (zeroDependency names) p.dependencies; };
  normaliseLock =
    names: lock:
    lock
    // {
      package = map (zeroPackage names) lock.package;
    };

  isDependencyTable =
    t:
    lib.elem t [
      "dependencies"
      "dev-dependencies"
      "build-dependencies"
      "dev_dependencies"
      "build_dependencies"
    ];
  # A TOML key path (as crane's cleanCargoToml filters pass it) holding a workspace version:
  # the package's own, the workspace's, or a version requirement on a workspace crate.
  isWorkspaceVersion =
    names: path:
    let
      n = lib.length path;
      e = lib.elemAt path;
      isLocalKey = k: names.crates ? ${k} || lib.elem k names.renamed;
    in
    path == [
      "package"
      "version"
    ]
    || path == [
      "workspace"
      "package"
      "version"
    ]
    || (n == 3 && isDependencyTable (e 0) && isLocalKey (e 1) && e 2 == "version")
    || (n == 4 && e 0 == "workspace" && e 1 == "dependencies" && isLocalKey (e 2) && e 3 == "version")
    || (n == 5 && e 0 == "target" && isDependencyTable (e 2) && isLocalKey (e 3) && e 4 == "version");
  versionFilter = names: path: craneLib.filters.cargoTomlDefault path && !(isWorkspaceVersion names path);

  # The dummy source of one snapshot: its manifests (and .cargo configs) from `fileset` under
  # `root`, its parsed lock normalised. Crates patched in from the tree are dependencies like
  # any other: the closures compile them from their real sources, at the path the packages
  # have them.
  dummySrcOf =
    {
      root,
      fileset,
      lock,
      names,
      patchPaths,
      patchManifests ? [ ],
      extraDummyScript ? "",
    }:
    craneLib.mkDummySrc {
      src = lib.fileset.toSource { inherit root fileset; };
      cargoLock = craneLib.writeTOML "Cargo.lock" (normaliseLock names lock);
      cleanCargoTomlFilter = versionFilter names;
      extraDummyScript =
        lib.optionalString (patchPaths ++ patchManifests != [ ]) ''
          cp -r --no-preserve=mode ${
            lib.fileset.toSource {
              root = src;
              fileset = lib.fileset.unions (map at (patchPaths ++ patchManifests));
            }
          }/. $out/
        ''
        + extraDummyScript;
    };

  closureSrc = dummySrcOf {
    root = src;
    # Without the patched crates, which are copied in whole (`manifests` has no Cargo.lock:
    # mkDummySrc would copy the real one before putting the normalised one over it).
    fileset = lib.fileset.difference manifests (lib.fileset.unions (map at ws.patchPaths));
    lock = lockFile;
    names = localNames;
    inherit (ws) patchPaths;
    inherit patchManifests;
  };

  # ------------------------------------------------------------------------ vendoring

  # One vendor directory per lock, shared by the closures and the packages built with it.
  # Vendoring reads only the third-party entries of the lock, so the normalised one serves.
  vendorOf =
    {
      root,
      lock,
      names,
      cargoConfigs,
      gitHashes,
    }:
    craneLib.vendorCargoDeps (
      {
        src = lib.fileset.toSource {
          inherit root;
          fileset = lib.fileset.unions ([ (root + "/Cargo.lock") ] ++ map (c: root + "/${c}") cargoConfigs);
        };
        cargoLockParsed = normaliseLock names lock;
        outputHashes = gitHashes;
      }
      # The source replacement crane writes for each registry (vendorCargoRegistries.nix): by
      # name, the index as cargo's configuration has it (crates.io stays crane's own).
      // lib.optionalAttrs (registries != { }) { registries = lib.mapAttrs (_: r: r.index) registries; }
    );

  cargoVendorDir = vendorOf {
    root = src;
    lock = lockFile;
    names = localNames;
    inherit (ws) cargoConfigs gitHashes;
  };

  # Cargo's fingerprint of a registry crate holds its source path
  # (https://github.com/ipetkov/crane/issues/249), and crane's vendor directory is a store path
  # that changes with every lock: each crate would look new after any bump. So every build
  # links the vendor directory's `stable` twin (one derivation per lock: the crates under
  # names made of the crate, its version and a digest of its source; see the script) at
  # $NIX_BUILD_TOP/cargo-vendor, the same path in every sandbox, and cargo reads it there: a
  # crate keeps its artifacts until its own source changes, even at the same version.
  vendorArgs = cargoVendorDir: {
    inherit cargoVendorDir;
    stableVendorDir = pkgs.runCommandLocal "cargo-vendor-stable" { } ''
      bash ${./stable-vendor.sh} ${cargoVendorDir} $out
    '';
  };
  stableVendorPaths = ''
    ln -sfn "$stableVendorDir" "$NIX_BUILD_TOP/cargo-vendor"
    sed -i "s|$cargoVendorDir|$NIX_BUILD_TOP/cargo-vendor|g" "$CARGO_HOME/config.toml"
  '';

  # ------------------------------------------------------------------------ the base snapshot

  # nix/nixcrate/base/ is a snapshot of the workspace's Cargo.lock and manifests, taken by
  # `nixcrate init` and moved only by `nixcrate init --refresh-base`. Its closures are built
  # once (and served by the binary cache); each closure of the current lock starts from its
  # base closure's target/ directory, and cargo's fingerprints recompile only what moved since.
  # Without a base (or when a crate it patches in is gone from the tree) every closure is built
  # from nothing, as before: slower, never wrong.
  baseDir = ./base;
  base =
    if !builtins.pathExists (baseDir + "/base.nix") then
      null
    else
      let
        b = import (baseDir + "/base.nix");
        edited = lib.filter (
          rel:
          !builtins.pathExists (baseDir + "/${rel}")
          || builtins.hashFile "sha256" (baseDir + "/${rel}") != b.files.${rel}
        ) (lib.attrNames b.files);
        fix = "run 'nixcrate init --refresh-base' and commit nix/nixcrate/base";
      in
      if b.format or null != 1 then
        throw "nixcrate: nix/nixcrate/base/base.nix: written by another nixcrate version: ${fix}"
      else if edited != [ ] then
        throw "nixcrate: nix/nixcrate/base/${lib.head edited}: edited by hand since nixcrate took the snapshot: ${fix}"
      else if !lib.all (p: builtins.pathExists (at p)) (b.patchPaths ++ b.patchManifests or [ ]) then
        null
      else
        b;

  baseNames = {
    inherit (base) crates;
    renamed = base.renamedDependencies;
  };
  baseLock = builtins.fromTOML (builtins.readFile (baseDir + "/Cargo.lock"));
  baseVendorDir = vendorOf {
    root = baseDir;
    lock = baseLock;
    names = baseNames;
    inherit (base) cargoConfigs;
    # Keyed by commit: hashes recorded since the base was taken (`nixcrate hashes`) serve it too,
    # so its git crates are fixed-output fetches as soon as the workspace's are.
    gitHashes = ws.gitHashes // base.gitHashes;
  };
  baseClosures = closuresOf {
    src = dummySrcOf {
      root = baseDir;
      fileset = lib.fileset.difference baseDir (
        lib.fileset.unions [
          (baseDir + "/Cargo.lock")
          (baseDir + "/base.nix")
        ]
      );
      lock = baseLock;
      names = baseNames;
      inherit (base) patchPaths;
      patchManifests = base.patchManifests or [ ];
      # The snapshot holds manifests only: give cargo the target files it finds by convention.
      extraDummyScript = ''
        for stub in ${lib.escapeShellArgs base.stubs}; do
          [ -e "$out/$stub" ] || { mkdir -p "$out/$(dirname "$stub")"; echo 'fn main() {}' > "$out/$stub"; }
        done
      '';
    };
    cargoVendorDir = baseVendorDir;
    lines = base.closures;
    from = null;
  };

  # What moved since the base. A build whose inputs did not move can start from the base's
  # closure, as it did before: the same cargo command line, the same third-party lock entries
  # within its reach, and the same manifests (versions aside) for the root and the in-tree
  # crates it compiles.
  manifestOf = path: if path == "." then "Cargo.toml" else "${path}/Cargo.toml";
  # The registry and git entries of a lock reachable from these in-tree crates, sorted. Read
  # from the lock alone, so it counts every feature's dependencies: it may see a move that
  # cargo would not rebuild for, never the other way round.
  thirdPartyReach =
    lock: roots:
    let
      byName = lib.groupBy (p: p.name) lock.package;
      node = p: {
        key = "${p.name} ${p.version} ${p.source or "path"} ${p.checksum or ""}";
        inherit p;
      };
      resolve =
        ref:
        let
          words = lib.splitString " " ref;
        in
        lib.filter (p: lib.length words == 1 || p.version == lib.elemAt words 1) (
          byName.${lib.head words} or [ ]
        );
    in
    lib.sort lib.lessThan (
      map (n: n.key) (
        lib.filter (n: n.p ? source) (
          builtins.genericClosure {
            startSet = map node (lib.concatMap (r: lib.filter (p: !(p ? source)) (byName.${r} or [ ])) roots);
            operator = n: map node (lib.concatMap resolve (n.p.dependencies or [ ]));
          }
        )
      )
    );
  sameCleanManifest =
    rel: baseRel:
    builtins.pathExists (baseDir + "/${baseRel}")
    && craneLib.cleanCargoToml {
      cargoToml = at rel;
      cleanCargoTomlFilter = versionFilter localNames;
    } == craneLib.cleanCargoToml {
      cargoToml = baseDir + "/${baseRel}";
      cleanCargoTomlFilter = versionFilter baseNames;
    };
  sameConfigs =
    ws.cargoConfigs == base.cargoConfigs
    && lib.all (c: builtins.hashFile "sha256" (at c) == base.files.${c}) ws.cargoConfigs;
  # Whether in-tree crates `roots` (compiling `crates`) see the inputs the base saw.
  unmoved =
    { roots, crates }:
    base != null
    && ws.patchPaths == base.patchPaths
    && patchManifests == base.patchManifests or [ ]
    && sameConfigs
    && sameCleanManifest "Cargo.toml" "Cargo.toml"
    && lib.all (
      c: base.crates ? ${c} && sameCleanManifest (manifestOf ws.crates.${c}.path) (manifestOf base.crates.${c})
    ) crates
    && thirdPartyReach lockFile roots == thirdPartyReach baseLock roots;

  # Every manifest cargo reads, byte for byte as the base has it: the base lock is then a lock
  # of this very workspace, equal to Cargo.lock within a kept closure's reach.
  manifestFiles = lib.unique (
    [ "Cargo.toml" ]
    ++ map (c: manifestOf c.path) (
      lib.filter (c: !(lib.elem c.path ws.patchPaths)) (lib.attrValues ws.crates)
    )
    ++ ws.cargoConfigs
  );
  sameManifestBytes =
    base != null
    && lib.sort lib.lessThan manifestFiles == lib.sort lib.lessThan (lib.remove "Cargo.lock" (lib.attrNames base.files))
    && lib.all (rel: builtins.hashFile "sha256" (at rel) == base.files.${rel}) manifestFiles;

  # ------------------------------------------------------------------------ arguments

  # Inputs the closure and every package reusing it share: any difference (a PKG_CONFIG_PATH,
  # an env variable, the profile, the vendor paths) would make cargo recompile the
  # dependencies it touches.
  closureArgs =
    closure:
    {
      # Constant: a member's version bump must not rename (and so rebuild) the closures;
      # https://github.com/ipetkov/crane/issues/288
      pname = "workspace";
      version = "0.0.0";
      strictDeps = true;
      # Tests run in `nix flake check`, not in deploy builds.
      doCheck = false;
      postConfigure = stableVendorPaths;
      inherit (closure) nativeBuildInputs buildInputs;
      env = closure.env // registryEnv;
    };

  serviceArgs = closureArgs ws.closures.services;

  lambdaArgs =
    let
      base = closureArgs ws.closures.lambdas;
    in
    base
    // {
      nativeBuildInputs = base.nativeBuildInputs ++ [
        pkgs.cargo-zigbuild
        pkgs.zig
      ];
      # Zig's caches at the same paths in the closure and the handler builds (see the script).
      preBuild = ''
        source ${./zig-caches.sh}
      '';
    };

  checkArgs = closureArgs ws.closures.checks;

  # `cargo <command>` for one member as its own build runs it, so that the closure holds
  # exactly what that build asks for: `-p a -p b` would unify features across members and
  # leave each build recompiling the crates whose features differ (crane#396).
  cargoLines = command: args: lib.concatMapStrings (a: "${command a}\n") args;

  # [services] unify-features: the services are built as one cargo invocation builds them all,
  # each dependency with the features any service asks for (cargo unifies the features of the
  # packages a command selects), so the closure compiles each crate once instead of once per
  # feature set. The closure runs that command; each service's build runs it too, narrowed to
  # its own binaries by `--bin` (which leaves the selection, and so the features, as they
  # are): it finds every dependency compiled. Standalone libraries keep their own commands.
  unified = lib.optionals (ws.closures.services.unify or false) (
    lib.attrNames (lib.filterAttrs (_: m: m.kind == "service" && m.bins != [ ]) services)
  );
  unifiedArgs =
    let
      features = lib.concatMap (n: map (f: "${n}/${f}") (members.${n}.features or [ ])) unified;
    in
    lib.escapeShellArgs (
      [ "--locked" ]
      ++ lib.concatMap (n: [
        "-p"
        n
      ]) unified
      ++ lib.optionals (features != [ ]) [
        "--features"
        (lib.concatStringsSep "," features)
      ]
    );
  # The closure command a service's build shares, and the members whose inputs it depends on.
  serviceLine = name: if lib.elem name unified then unifiedArgs else cargoArgs name;
  serviceRoots = name: if lib.elem name unified then unified else [ name ];

  zigbuild = name: "cargoWithProfile zigbuild ${cargoArgs name} --target ${zigTarget name}";

  # The cargo arguments each closure runs, one entry per member (the base records its own).
  lines = {
    services = lib.unique (map serviceLine (lib.attrNames services));
    lambdas = map (name: "${cargoArgs name} --target ${zigTarget name}") (lib.attrNames lambdas);
    checks = map checkLine (lib.attrNames members);
  };

  # A member's clippy and test checks (nixcrate.toml [checks], [members.<name>.checks]): each
  # one's arguments and `deps`, those its dependencies are compiled with; null where the member
  # has no such check.
  checksOf = name: ws.crates.${name}.checks or ws.checks.members;

  # What a member's checks ask the checks closure for: its cargo arguments and the `deps` of
  # its clippy and test checks (null: no such check). Data, not a command line, so that the
  # base snapshot records it as it is and escaping happens here only.
  checkLine =
    name:
    let
      c = checksOf name;
    in
    {
      args = cargoArgs name;
      clippy = if c.clippy == null then null else c.clippy.deps;
      test = if c.test == null then null else c.test.deps;
    };

  # ------------------------------------------------------------------------ closures

  # The deps-only derivations of one snapshot (source, vendor directory, command lines),
  # starting from the closures `from` (null: from nothing). The base's and the current ones
  # have the same names: which one a package uses is an implementation detail. Built on mkCargoDerivation, as
  # crane's buildDepsOnly forces `cargoArtifacts = null`
  # (https://github.com/ipetkov/crane/issues/924).
  closuresOf =
    {
      src,
      cargoVendorDir,
      lines,
      from,
    }:
    let
      depsOnly =
        cargoArtifacts: args:
        craneLib.mkCargoDerivation (
          args
          // {
            inherit src cargoArtifacts;
            pnameSuffix = "-deps";
            doInstallCargoArtifacts = true;
            # Copy inherited artifacts, never link them into the store: a crate recompiled under
            # the same file name (its source changed at the same version) must not write through
            # a link to the older closure (crane#249's permission error). crane's default zstd
            # archives are unpacked anyway; this holds for its symlink mode too.
            doNotLinkInheritedArtifacts = true;
            env = args.env // {
              CRANE_BUILD_DEPS_ONLY = 1;
            };
          }
          // vendorArgs cargoVendorDir
        );
      chained = ws.closures.checks.chained;
      deployLines = cargoLines (a: "cargoWithProfile build ${a}") lines.services;
      deploy = depsOnly (if from == null then null else from.deploy) (
        serviceArgs
        // {
          pname = "deploy";
          buildPhaseCargoCommand = deployLines;
        }
      );
    in
    {
      # Third-party crates of every service, compiled once and shared.
      inherit deploy;

      # The handlers' own closure, so C-heavy service dependencies stay out of it. Dependencies
      # are compiled exactly as the handlers are linked (cargo-zigbuild, same target, env and
      # cache paths): a plain `cargo build` closure would be recompiled in full by the link.
      # No `cargo check` here: rustc rejects the glibc-suffixed target it would need.
      lambda = depsOnly (if from == null then null else from.lambda) (
        lambdaArgs
        // {
          pname = "lambda-deploy";
          buildPhaseCargoCommand = cargoLines (a: "cargoWithProfile zigbuild ${a}") lines.lambdas;
        }
      );

      # What the checks compile beyond the deploy closure: per member, the commands its own
      # checks run (clippy's check-mode metadata with the dev-dependencies of every target, and
      # the test build), one cargo invocation per member as its check runs it. Chained on the
      # deploy closure (or, with `[checks] closure = true`, standalone in the dev profile).
      # Started from the base's checks closure, it first brings the deploy crates up to date.
      checks =
        depsOnly
          (
            if from != null then
              from.checks
            else if chained then
              deploy
            else
              null
          )
          (
            checkArgs
            // {
              pname = "checks";
              preBuild = removeStaleCmakeState;
              buildPhaseCargoCommand =
                lib.optionalString (chained && from != null) deployLines
                + lib.concatMapStrings (
                  c:
                  lib.optionalString (c.clippy != null) "cargoWithProfile check ${c.args} ${lib.escapeShellArgs c.clippy}\n"
                  + lib.optionalString (c.test != null) "cargoWithProfile test ${c.args} --no-run ${lib.escapeShellArgs c.test}\n"
                ) lines.checks;
            }
          );
    };

  current = closuresOf {
    src = closureSrc;
    inherit cargoVendorDir lines;
    from = if base == null then null else baseClosures;
  };

  # A closure none of whose members' inputs moved *is* the base closure.
  compiledByAll = names: lib.unique (lib.concatMap (m: compiledBy { member = m; }) names);
  keptClosure =
    kind: names:
    base != null
    && lines.${kind} == base.closures.${kind} or null
    && unmoved {
      roots = names;
      crates = compiledByAll names;
    };
  kept = {
    services = keptClosure "services" (lib.attrNames services);
    lambdas = keptClosure "lambdas" (lib.attrNames lambdas);
    checks = keptClosure "checks" (lib.attrNames members);
  };

  deployCargoArtifacts = if kept.services then baseClosures.deploy else current.deploy;
  lambdaDeployCargoArtifacts = if kept.lambdas then baseClosures.lambda else current.lambda;
  checkCargoArtifacts = if kept.checks then baseClosures.checks else current.checks;

  # What a package (or check) starts from and builds with. One whose own inputs did not move
  # starts from the base closure, which holds every artifact it asks for; and when every
  # manifest is byte for byte the base's, it builds with the base lock, which is this
  # workspace's lock but for crates the package does not reach. Its derivation (and a
  # handler's zip) then stays as it was however often other packages' crates move.
  # Anything else starts from its closure and builds with Cargo.lock. `roots`: the members
  # whose inputs decide what it builds (a unified service: every unified service).
  buildArgs =
    {
      kind,
      closure,
      line,
      roots,
      crates,
    }:
    if base != null && lib.elem line base.closures.${kind} && unmoved { inherit roots crates; } then
      {
        cargoArtifacts = baseClosures.${closure};
      }
      // (
        if sameManifestBytes then
          { cargoLock = baseDir + "/Cargo.lock"; } // vendorArgs baseVendorDir
        else
          { cargoLock = at "Cargo.lock"; } // vendorArgs cargoVendorDir
      )
    else
      {
        cargoArtifacts =
          {
            deploy = deployCargoArtifacts;
            lambda = lambdaDeployCargoArtifacts;
            checks = checkCargoArtifacts;
          }
          .${closure};
        cargoLock = at "Cargo.lock";
      }
      // vendorArgs cargoVendorDir;

  # ------------------------------------------------------------------------ services

  mkService =
    name: _:
    craneLib.buildPackage (
      serviceArgs
      // {
        pname = name;
        version = localVersions.${name};
        cargoExtraArgs =
          if lib.elem name unified then
            "${unifiedArgs} ${lib.escapeShellArgs (lib.concatMap (b: [ "--bin" b ]) members.${name}.bins)}"
          else
            cargoArgs name;
        preBuild = removeStaleCmakeState;
      }
      // buildArgs {
        kind = "services";
        closure = "deploy";
        line = serviceLine name;
        roots = serviceRoots name;
        crates = compiledByAll (serviceRoots name);
      }
      # A library no crate depends on has no binary: its package proves it compiles, and crane's
      # install from the build log puts its cdylib, dylib and staticlib files under lib/ (an
      # rlib or a proc-macro alone: an empty $out).
      // packageSource { crates = compiledBy { member = name; }; }
    );

  # ------------------------------------------------------------------------ Lambda handlers

  # Every bin of a handler crate from one cargo invocation: their shared code compiles once,
  # and an edit to the crate rebuilds one derivation however many handlers it holds.
  mkLambdaBuild =
    name: handler:
    craneLib.buildPackage (
      lambdaArgs
      // {
        pname = "lambda-${name}";
        version = localVersions.${name};
        cargoExtraArgs = cargoArgs name;
        preBuild = lambdaArgs.preBuild + removeStaleCmakeState;
        buildPhaseCargoCommand = zigbuild name;
        # The binaries are where zigbuild leaves them; crane's build-log install is not used.
        doNotPostBuildInstallCargoBinaries = true;
        installPhaseCommand = ''
          mkdir -p $out/bin
          for bin in ${lib.escapeShellArgs handler.bins}; do
            cp "target/${triples.${handler.arch}}/${ws.closures.lambdas.profileDir}/$bin" $out/bin/
          done
        '';
        # Panic messages can name the toolchain and vendored sources: crane's install hooks
        # blank those store paths. Lambda has no /nix/store: no stdenv fixup either.
        dontFixup = true;
      }
      // buildArgs {
        kind = "lambdas";
        closure = "lambda";
        line = "${cargoArgs name} --target ${zigTarget name}";
        roots = [ name ];
        crates = compiledBy { member = name; };
      }
      // packageSource { crates = compiledBy { member = name; }; }
    );

  lambdaBuilds = lib.mapAttrs mkLambdaBuild lambdas;

  # bootstrap.zip for one bin: the binary as `bootstrap` plus the declared includes, zipped
  # reproducibly, then checked with the rules of `nixcrate lambda verify`.
  mkLambdaZip =
    name: handler: bin:
    let
      include = handler.include or [ ];
    in
    pkgs.runCommand "deploy-lambda-${bin}"
      {
        nativeBuildInputs = [
          pkgs.zip
          pkgs.unzip
          pkgs.binutils
        ];
        # The handler crate's build, for whoever wants its log or its other binaries.
        passthru.crateBuild = lambdaBuilds.${name};
        # The included files, at their paths under the workspace root.
        includes =
          if include == [ ] then
            ""
          else
            lib.fileset.toSource {
              root = src;
              fileset = lib.fileset.unions (map at include);
            };
      }
      ''
        cd "''${includes:-.}"
        bash ${./lambda-package.sh} ${lambdaBuilds.${name}}/bin/${lib.escapeShellArg bin} "$out" ${lib.escapeShellArgs include}
        bash ${./lambda-verify.sh} "$out/bootstrap.zip" ${handler.arch} ${ws.closures.lambdas.glibc} ${lib.escapeShellArgs include}
      '';

  lambdaPackages = lib.optionalAttrs pkgs.stdenv.hostPlatform.isLinux (
    lib.concatMapAttrs (
      name: handler:
      lib.listToAttrs (
        map (bin: lib.nameValuePair "deploy-lambda-${bin}" (mkLambdaZip name handler bin)) handler.bins
      )
    ) lambdas
    // lib.optionalAttrs (lambdas != { }) { inherit lambdaDeployCargoArtifacts; }
  );

  servicePackages =
    lib.mapAttrs mkService services
    // lib.optionalAttrs (services != { }) { inherit deployCargoArtifacts; };

  # `nix build` without an attribute, in a workspace with one service (or one handler zip):
  # that one. With several there is none: a join of them all would be one more derivation
  # that every edit changes; build them by name (`nix build .#api .#worker`).
  deployables = lib.filterAttrs (attr: _: services ? ${attr} || lib.hasPrefix "deploy-lambda-" attr) (
    servicePackages // lambdaPackages
  );

  # `nix run .#<service>`: its binary named as the package, else its first.
  apps = lib.mapAttrs (name: m: {
    type = "app";
    program = "${servicePackages.${name}}/bin/${if lib.elem name m.bins then name else lib.head m.bins}";
  }) (lib.filterAttrs (_: m: m.kind == "service" && m.bins or [ ] != [ ]) services);

  # ------------------------------------------------------------------------ checks

  # One check of a member: its source is the crates its tests compile (with what its own
  # tests, benches and examples read) plus `extra`.
  mkCheck =
    craneFn: name: extra: args:
    craneFn (
      checkArgs
      // {
        pname = name;
        version = localVersions.${name};
        cargoExtraArgs = cargoArgs name;
        preBuild = removeStaleCmakeState;
        # closureArgs keeps tests out of deploy builds; checks run them.
        doCheck = true;
        # A check's output is its success, not a copy of target/.
        doInstallCargoArtifacts = false;
      }
      // buildArgs {
        kind = "checks";
        closure = "checks";
        line = checkLine name;
        roots = [ name ];
        crates = compiledBy {
          member = name;
          dev = true;
        };
      }
      // packageSource {
        crates = compiledBy {
          member = name;
          dev = true;
        };
        checked = [ name ];
        inherit extra;
      }
      // args
    );

  memberChecks = lib.concatMapAttrs (
    name: _:
    let
      c = checksOf name;
    in
    lib.optionalAttrs (c.clippy != null) {
      "clippy-${name}" = mkCheck craneLib.cargoClippy name ws.checks.clippyConfigs {
        cargoClippyExtraArgs = lib.escapeShellArgs c.clippy.args;
      };
    }
    // lib.optionalAttrs (c.test != null) (
      if ws.nextestConfig != null then
        {
          "nextest-${name}" = mkCheck craneLib.cargoNextest name [ ws.nextestConfig ] {
            cargoNextestExtraArgs = lib.escapeShellArgs c.test.args;
          };
        }
      else
        {
          "test-${name}" = mkCheck craneLib.cargoTest name [ ] {
            cargoTestExtraArgs = lib.escapeShellArgs c.test.args;
          };
        }
    )
  ) members;

  # Building a handler's zip runs the rules of `nixcrate lambda verify`.
  lambdaChecks = lib.mapAttrs' (
    attr: zip: lib.nameValuePair "lambda-verify-${lib.removePrefix "deploy-lambda-" attr}" zip
  ) (lib.filterAttrs (attr: _: lib.hasPrefix "deploy-lambda-" attr) lambdaPackages);

  checks =
    memberChecks
    // lib.optionalAttrs ws.checks.lambdaVerify lambdaChecks
    // lib.optionalAttrs ws.checks.fmt {
      # rustfmt compiles nothing, so it needs no closure.
      fmt = craneLib.cargoFmt {
        pname = "workspace";
        version = "0.0.0";
        src = sourceOf {
          crates = lib.attrNames ws.crates;
          checked = lib.attrNames ws.crates;
          extra = ws.checks.rustfmtConfigs;
        };
      };
    };
in
{
  packages =
    servicePackages
    // lambdaPackages
    // lib.optionalAttrs (lib.length (lib.attrNames deployables) == 1) {
      default = lib.head (lib.attrValues deployables);
    };
  apps = apps // lib.optionalAttrs (lib.length (lib.attrNames apps) == 1) { default = lib.head (lib.attrValues apps); };
  inherit checks craneLib;
  # The toolchain (crane's devShell adds it), the closures' native inputs, as their builds have
  # them, cargo-zigbuild and zig when there are handlers, and nixcrate.
  devShell = craneLib.devShell {
    inputsFrom =
      lib.optional (services != { }) deployCargoArtifacts
      ++ lib.optional (lambdaPackages ? lambdaDeployCargoArtifacts) lambdaDeployCargoArtifacts;
    packages =
      lib.optionals (lambdas != { }) [
        pkgs.cargo-zigbuild
        pkgs.zig
      ]
      ++ lib.optional (nixcrate != null) nixcrate;
  };
}
