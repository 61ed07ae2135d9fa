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

  # Members built and checked: excluded ones and path dependencies have no kind, and a
  # library the build machine cannot build (a wasm cdylib, a Python extension) is `leftOut`.
  members = lib.filterAttrs (_: c: c ? kind && !(c.leftOut or false)) ws.crates;
  # Services, and libraries no crate depends on (`package = true`): one buildPackage each on
  # the services' closure.
  services = lib.filterAttrs (_: m: m.kind == "service" || m.package or false) members;
  lambdas = lib.filterAttrs (_: m: m.kind == "lambda") members;

  # What every cargo command of a member gets: `--locked -p <name>`, then its settings.
  cargoArgs =
    name:
    let
      m = members.${name};
    in
    lib.concatStringsSep " " (
      [
        "--locked"
        "-p"
        name
      ]
      ++ lib.optionals (m.features or [ ] != [ ]) [
        "--features"
        (lib.concatStringsSep "," m.features)
      ]
      ++ lib.optional (m.cargoExtraArgs or "" != "") m.cargoExtraArgs
    );

  # cargo-zigbuild's target: the triple, then the glibc the handlers link against.
  triples = {
    x86_64 = "x86_64-unknown-linux-gnu";
    arm64 = "aarch64-unknown-linux-gnu";
  };
  zigTarget = name: "${triples.${lambdas.${name}.arch}}.${ws.closures.lambdas.glibc}";

  # ------------------------------------------------------------------------ toolchain

  craneLib =
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

  # A path under the workspace root, and one under a crate's directory.
  at = rel: if rel == "." then src else src + "/${rel}";
  inCrate = crate: rel: at (if crate.path == "." then rel else "${crate.path}/${rel}");

  # Cargo loads every manifest of the workspace (and checks Cargo.lock with --locked) even
  # when it builds a single package, so every source has them.
  manifests = lib.fileset.unions (
    [
      (at "Cargo.toml")
      (at "Cargo.lock")
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
        ++ map at (extra ++ ws.patchPaths)
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

  zeroDependency =
    dep:
    let
      words = lib.splitString " " dep;
    in
    if lib.length words == 2 && ws.crates ? ${lib.head words} then "${lib.head words} 0.0.0" else dep;
  zeroPackage =
    p:
    p
    // lib.optionalAttrs (!(p ? source) && ws.crates ? ${p.name}) { version = "0.0.0"; }
    // lib.optionalAttrs (p ? dependencies) { dependencies = map zeroDependency p.dependencies; };
  normalisedLock = lockFile // {
    package = map zeroPackage lockFile.package;
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
  isLocalKey = k: ws.crates ? ${k} || lib.elem k ws.renamedDependencies;
  # A TOML key path (as crane's cleanCargoToml filters pass it) holding a workspace version:
  # the package's own, the workspace's, or a version requirement on a workspace crate.
  isWorkspaceVersion =
    path:
    let
      n = lib.length path;
      e = lib.elemAt path;
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

  # Crates patched in from the tree are dependencies like any other: the closures compile them
  # from their real sources, at the path the packages have them.
  patchedSrc = lib.fileset.toSource {
    root = src;
    fileset = lib.fileset.unions (map at ws.patchPaths);
  };

  closureSrc = craneLib.mkDummySrc {
    # Without the real lock (mkDummySrc would copy it before putting the normalised one over
    # it) and without the patched crates, which are copied in whole below.
    src = lib.fileset.toSource {
      root = src;
      fileset = lib.fileset.difference manifests (
        lib.fileset.unions ([ (at "Cargo.lock") ] ++ map at ws.patchPaths)
      );
    };
    cargoLock = craneLib.writeTOML "Cargo.lock" normalisedLock;
    cleanCargoTomlFilter = path: craneLib.filters.cargoTomlDefault path && !(isWorkspaceVersion path);
    extraDummyScript = lib.optionalString (ws.patchPaths != [ ]) ''
      cp -r --no-preserve=mode ${patchedSrc}/. $out/
    '';
  };

  # One vendor directory for every derivation: the same store path in the closures and in the
  # packages, so cargo's fingerprints match and nothing recompiles. Vendoring reads only the
  # third-party entries of the lock, so the normalised one serves.
  cargoVendorDir = craneLib.vendorCargoDeps {
    src = lib.fileset.toSource {
      root = src;
      fileset = lib.fileset.unions ([ (at "Cargo.lock") ] ++ map at ws.cargoConfigs);
    };
    cargoLockParsed = normalisedLock;
    outputHashes = ws.gitHashes;
  };

  # ------------------------------------------------------------------------ arguments

  # Inputs the closure and every package reusing it share: any difference (a PKG_CONFIG_PATH,
  # an env variable, the profile) would make cargo recompile the dependencies it touches.
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
      inherit cargoVendorDir;
      inherit (closure) nativeBuildInputs buildInputs env;
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

  # `cargo <command>` for one member as its own build runs it, so that the closure holds
  # exactly what that build asks for: `-p a -p b` would unify features across members and
  # leave each build recompiling the crates whose features differ (crane#396).
  cargoLines = command: members: lib.concatMapStrings (m: "${command m}\n") members;

  zigbuild = name: "cargoWithProfile zigbuild ${cargoArgs name} --target ${zigTarget name}";

  # ------------------------------------------------------------------------ closures

  # Third-party crates of every service, compiled once and shared.
  deployCargoArtifacts = craneLib.buildDepsOnly (
    serviceArgs
    // {
      pname = "deploy";
      dummySrc = closureSrc;
      buildPhaseCargoCommand = cargoLines (m: "cargoWithProfile build ${cargoArgs m}") (
        lib.attrNames services
      );
    }
  );

  # The handlers' own closure, so C-heavy service dependencies stay out of it. Dependencies
  # are compiled exactly as the handlers are linked (cargo-zigbuild, same target, env and
  # cache paths): a plain `cargo build` closure would be recompiled in full by the link.
  # No `cargo check` here: rustc rejects the glibc-suffixed target it would need.
  lambdaDeployCargoArtifacts = craneLib.buildDepsOnly (
    lambdaArgs
    // {
      pname = "lambda-deploy";
      dummySrc = closureSrc;
      buildPhaseCargoCommand = cargoLines zigbuild (lib.attrNames lambdas);
    }
  );

  # ------------------------------------------------------------------------ services

  mkService =
    name: service:
    craneLib.buildPackage (
      serviceArgs
      // {
        pname = name;
        version = localVersions.${name};
        cargoExtraArgs = cargoArgs name;
        cargoArtifacts = deployCargoArtifacts;
        preBuild = removeStaleCmakeState;
      }
      // packageSource { crates = compiledBy { member = name; }; }
      # A library no crate depends on has no binary: its package proves it compiles.
      // lib.optionalAttrs (service.bins or [ ] == [ ]) {
        doNotPostBuildInstallCargoBinaries = true;
        installPhaseCommand = "mkdir -p $out";
      }
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
        cargoArtifacts = lambdaDeployCargoArtifacts;
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

  checkArgs = closureArgs ws.closures.checks;

  # A member's clippy and test checks (nixcrate.toml [checks], [members.<name>.checks]): each
  # one's arguments and `deps`, those its dependencies are compiled with; null where the member
  # has no such check.
  checksOf = name: ws.crates.${name}.checks or ws.checks.members;

  # What the checks compile beyond deployCargoArtifacts: per member, the commands its own
  # checks run (clippy's check-mode metadata with the dev-dependencies of every target, and the
  # test build), one cargo invocation per member as its check runs it. Chained on the deploy
  # closure (or, with `[checks] closure = true`, standalone in the dev profile).
  checkCargoArtifacts = craneLib.mkCargoDerivation (
    checkArgs
    // {
      pname = "checks";
      pnameSuffix = "-deps";
      src = closureSrc;
      cargoArtifacts = if ws.closures.checks.chained then deployCargoArtifacts else null;
      preBuild = removeStaleCmakeState;
      env = checkArgs.env // {
        CRANE_BUILD_DEPS_ONLY = 1;
      };
      buildPhaseCargoCommand = cargoLines (
        m:
        let
          c = checksOf m;
        in
        lib.concatStringsSep "\n" (
          lib.optional (c.clippy != null) "cargoWithProfile check ${cargoArgs m} ${lib.escapeShellArgs c.clippy.deps}"
          ++ lib.optional (c.test != null) "cargoWithProfile test ${cargoArgs m} --no-run ${lib.escapeShellArgs c.test.deps}"
        )
      ) (lib.attrNames members);
    }
  );

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
        cargoArtifacts = checkCargoArtifacts;
        preBuild = removeStaleCmakeState;
        # closureArgs keeps tests out of deploy builds; checks run them.
        doCheck = true;
        # A check's output is its success, not a copy of target/.
        doInstallCargoArtifacts = false;
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
