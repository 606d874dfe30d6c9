# forgelike::platform, powershell implementation.
Write-Output '{"implementation":"powershell"}'
