{
  "targets": [
    {
      "target_name": "fastpng",
      "sources": ["fastpng.c"],
      "cflags": ["-O3", "-Wall", "-Wextra", "-ffp-contract=off"],
      "libraries": ["-lm"],
      "cflags!": ["-O2"],
      "xcode_settings": { "OTHER_CFLAGS": ["-O3", "-ffp-contract=off"] }
    }
  ]
}
