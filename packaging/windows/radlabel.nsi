; NSIS installer of the radlabel application bundle on Windows (NOT built or tested by the project yet:
; see packaging/windows/README.md). Build on Windows after `python packaging\build.py bundle --flavour cpu`:
;   makensis /DVERSION=0.1.0 /DBUNDLE=..\..\dist\radlabel-0.1.0-windows-x86_64-cpu packaging\windows\radlabel.nsi
; Silent install for software distribution:  radlabel-0.1.0-setup.exe /S [/D=C:\Program Files\radlabel]
; Silent uninstall:                          "C:\Program Files\radlabel\uninstall.exe" /S
; Uninstall keeps %LOCALAPPDATA%\radlabel (cases, journals, audit logs) and %PROGRAMDATA%\radlabel (site data).

Unicode true
RequestExecutionLevel admin
!ifndef VERSION
  !define VERSION "0.1.0"
!endif
!ifndef BUNDLE
  !error "define BUNDLE: the folder PyInstaller built"
!endif

Name "radlabel ${VERSION}"
OutFile "radlabel-${VERSION}-setup.exe"
InstallDir "$PROGRAMFILES64\radlabel"
InstallDirRegKey HKLM "Software\radlabel" "InstallDir"

Section "radlabel" SecMain
  SetShellVarContext all
  SetOutPath "$INSTDIR"
  File /r "${BUNDLE}\*.*"
  WriteRegStr HKLM "Software\radlabel" "InstallDir" "$INSTDIR"
  WriteRegStr HKLM "Software\radlabel" "Version" "${VERSION}"
  ; site configuration: %PROGRAMDATA%\radlabel\settings.toml (radlabel reads it like /etc/radlabel/settings.toml)
  CreateDirectory "$APPDATA\radlabel"
  SetOverwrite off
  File "/oname=$APPDATA\radlabel\settings.toml" "..\linux\settings.toml"
  SetOverwrite on
  ; file associations: DICOM, NIfTI, NRRD, MetaImage
  WriteRegStr HKCR "radlabel.image" "" "Medical image (radlabel)"
  WriteRegStr HKCR "radlabel.image\DefaultIcon" "" "$INSTDIR\radlabel.exe,0"
  WriteRegStr HKCR "radlabel.image\shell\open\command" "" '"$INSTDIR\radlabel.exe" open "%1"'
  !macro Assoc EXT
    WriteRegStr HKCR "${EXT}\OpenWithProgids" "radlabel.image" ""
  !macroend
  !insertmacro Assoc ".dcm"
  !insertmacro Assoc ".nii"
  !insertmacro Assoc ".gz"
  !insertmacro Assoc ".nrrd"
  !insertmacro Assoc ".nhdr"
  !insertmacro Assoc ".mha"
  !insertmacro Assoc ".mhd"
  CreateShortCut "$SMPROGRAMS\radlabel.lnk" "$INSTDIR\radlabel.exe" "--demo"
  WriteUninstaller "$INSTDIR\uninstall.exe"
  WriteRegStr HKLM "Software\Microsoft\Windows\CurrentVersion\Uninstall\radlabel" "DisplayName" "radlabel"
  WriteRegStr HKLM "Software\Microsoft\Windows\CurrentVersion\Uninstall\radlabel" "DisplayVersion" "${VERSION}"
  WriteRegStr HKLM "Software\Microsoft\Windows\CurrentVersion\Uninstall\radlabel" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKLM "Software\Microsoft\Windows\CurrentVersion\Uninstall\radlabel" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
SectionEnd

Section "Uninstall"
  SetShellVarContext all
  Delete "$SMPROGRAMS\radlabel.lnk"
  DeleteRegKey HKCR "radlabel.image"
  DeleteRegKey HKLM "Software\Microsoft\Windows\CurrentVersion\Uninstall\radlabel"
  DeleteRegKey HKLM "Software\radlabel"
  RMDir /r "$INSTDIR"
  ; %PROGRAMDATA%\radlabel and every user's %LOCALAPPDATA%\radlabel stay: audit logs are records to keep.
SectionEnd
