<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="fr" sourcelanguage="en">
<context>
    <name>EarthGPTX</name>
    <message>
        <location filename="../plugin/dock.py" line="45"/>
        <source>Free question</source>
        <translation>Question libre</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="46"/>
        <source>Question (short answer)</source>
        <translation>Question (réponse courte)</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="47"/>
        <source>Describe the image</source>
        <translation>Décrire l’image</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="48"/>
        <source>Classify the scene</source>
        <translation>Classer la scène</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="49"/>
        <source>Describe region 1</source>
        <translation>Décrire la région 1</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="50"/>
        <source>What is in region 1?</source>
        <translation>Qu’y a-t-il dans la région 1 ?</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="51"/>
        <source>Relation between regions</source>
        <translation>Relation entre les régions</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="52"/>
        <source>Find all ... (boxes)</source>
        <translation>Trouver tous les ... (boîtes)</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="54"/>
        <source>Optical</source>
        <translation>Optique</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="55"/>
        <source>SAR</source>
        <translation>SAR</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="56"/>
        <source>Thermal infrared</source>
        <translation>Infrarouge thermique</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="57"/>
        <source>Box</source>
        <translation>Boîte</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="57"/>
        <source>Point</source>
        <translation>Point</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="58"/>
        <source>Free-form</source>
        <translation>Forme libre</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="59"/>
        <source>box</source>
        <translation>boîte</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="59"/>
        <source>point</source>
        <translation>point</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="60"/>
        <source>polygon</source>
        <translation>polygone</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="61"/>
        <source>scribble</source>
        <translation>tracé libre</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="73"/>
        <location filename="../plugin/layers.py" line="191"/>
        <location filename="../plugin/plugin_main.py" line="45"/>
        <location filename="../plugin/processing/provider.py" line="24"/>
        <source>EarthGPT-X</source>
        <translation>EarthGPT-X</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="102"/>
        <location filename="../plugin/processing/ask_features.py" line="41"/>
        <location filename="../plugin/processing/describe_scene.py" line="39"/>
        <location filename="../plugin/processing/segment_objects.py" line="44"/>
        <source>Raster</source>
        <translation>Raster</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="104"/>
        <source>Auto</source>
        <translation>Auto</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="107"/>
        <location filename="../plugin/processing/common.py" line="44"/>
        <source>Modality</source>
        <translation>Modalité</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="109"/>
        <source>auto, or e.g. 4 3 2</source>
        <translation>auto, ou p. ex. 4 3 2</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="110"/>
        <source>Bands</source>
        <translation>Bandes</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="114"/>
        <location filename="../plugin/dock.py" line="315"/>
        <source>Segment (outline the prompts)</source>
        <translation>Segmenter (contourer les invites)</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="115"/>
        <location filename="../plugin/processing/common.py" line="134"/>
        <source>Task</source>
        <translation>Tâche</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="116"/>
        <source>Outline the regions found (segmenter)</source>
        <translation>Contourer les régions trouvées (segmenteur)</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="117"/>
        <source>Find all ...: outline each box found with the segmenter of the settings (SAM 2.1 by default); the outlines go to the masks layer</source>
        <translation>Trouver tout ... : contourer chaque boîte trouvée avec le segmenteur des paramètres (SAM 2.1 par défaut) ; les contours vont dans la couche masks</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="127"/>
        <source>{0} prompt ({1})</source>
        <translation>Invite {0} ({1})</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="133"/>
        <source>Clear</source>
        <translation>Effacer</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="142"/>
        <source>Ask about the prompts, or the whole raster (for grounding: what to find)</source>
        <translation>Posez une question sur les invites ou sur tout le raster (pour la localisation : ce qu'il faut trouver)</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="146"/>
        <source>Ask</source>
        <translation>Demander</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="149"/>
        <source>Ask the model ({0})</source>
        <translation>Interroger le modèle ({0})</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="150"/>
        <source>Stop</source>
        <translation>Arrêter</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="153"/>
        <source>Search in tiles...</source>
        <translation>Chercher par tuiles...</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="154"/>
        <source>Find all ... over the whole raster (or the drawn prompts' extent) tile by tile, written to a GeoPackage as it goes: opens Find objects</source>
        <translation>Trouver tout ... sur le raster entier (ou l'emprise des invites dessinées) tuile par tuile, écrit dans un GeoPackage au fur et à mesure : ouvre Trouver des objets</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="167"/>
        <source>Draw a prompt (point, box or free-form) and ask about it, or ask about the whole image.</source>
        <translation>Dessinez une invite (point, boîte ou forme libre) et posez une question dessus, ou interrogez l'image entière.</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="175"/>
        <source>Conversation</source>
        <translation>Conversation</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="176"/>
        <source>Results</source>
        <translation>Résultats</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="179"/>
        <source>Help</source>
        <translation>Aide</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="180"/>
        <source>The README: prompts, tasks, outlines, settings</source>
        <translation>Le README : invites, tâches, contours, paramètres</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="183"/>
        <source>Export GeoPackage...</source>
        <translation>Exporter en GeoPackage...</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="183"/>
        <source>Export shapefile...</source>
        <translation>Exporter en shapefile...</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="210"/>
        <source>Model: {0} ({1}, {2}, {3}{4})</source>
        <translation>Modèle : {0} ({1}, {2}, {3}{4})</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="213"/>
        <source>Model: not loaded (it loads with the first question)</source>
        <translation>Modèle : non chargé (il se charge à la première question)</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="235"/>
        <source>{0}: {1}</source>
        <translation>{0} : {1}</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="254"/>
        <location filename="../plugin/dock.py" line="271"/>
        <source>Choose a raster layer first.</source>
        <translation>Choisissez d'abord une couche raster.</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="278"/>
        <source>Draw a point, a box or a region to outline first.</source>
        <translation>Dessinez d'abord un point, une boîte ou une région à contourer.</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="286"/>
        <source>Bands must be numbers, e.g. 4 3 2</source>
        <translation>Les bandes doivent être des nombres, p. ex. 4 3 2</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="293"/>
        <source>Part of a prompt lies outside the raster and was clipped.</source>
        <translation>Une partie d'une invite déborde du raster et a été découpée.</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="316"/>
        <source>You</source>
        <translation>Vous</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="317"/>
        <source>Model</source>
        <translation>Modèle</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="345"/>
        <source>The model is answering... ({0} characters)</source>
        <translation>Le modèle répond... ({0} caractères)</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="357"/>
        <source>The model is thinking... ({0} characters)</source>
        <translation>Le modèle réfléchit… ({0} caractères)</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="374"/>
        <source>the question was stopped</source>
        <translation>la question a été interrompue</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="381"/>
        <source>cut at the token limit</source>
        <translation>coupée à la limite de jetons</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="381"/>
        <source>stopped</source>
        <translation>interrompu</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="382"/>
        <source>the server stopped before the end of the answer</source>
        <translation>le serveur s’est arrêté avant la fin de la réponse</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="386"/>
        <source>{0} region(s) found</source>
        <translation>{0} région(s) trouvée(s)</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="389"/>
        <source>({0} more past the cap of one answer were not kept)</source>
        <translation>({0} de plus, au-delà du plafond d’une réponse, n’ont pas été gardées)</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="391"/>
        <location filename="../plugin/dock.py" line="461"/>
        <source>{0} outline(s)</source>
        <translation>{0} contour(s)</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="395"/>
        <source>Show the model's reasoning ({0} characters)</source>
        <translation>Afficher le raisonnement du modèle ({0} caractères)</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="437"/>
        <location filename="../plugin/dock.py" line="442"/>
        <source>region</source>
        <translation>région</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="438"/>
        <source>Nothing found.</source>
        <translation>Rien trouvé.</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="447"/>
        <source>Show the raw answer</source>
        <translation>Afficher la réponse brute</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="458"/>
        <source>Outlines: {0}</source>
        <translation>Contours : {0}</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="462"/>
        <source>({0} empty after dropping specks)</source>
        <translation>({0} vide(s) après suppression des petites taches)</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="492"/>
        <source>Its log is in the EarthGPT-X tab of the message log.</source>
        <translation>Son journal est dans l'onglet EarthGPT-X du journal des messages.</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="518"/>
        <source>Model worker restarted; the model loads with the next question.</source>
        <translation>Processus de calcul redémarré ; le modèle se chargera à la prochaine question.</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="527"/>
        <source>Export to GeoPackage</source>
        <translation>Exporter en GeoPackage</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="532"/>
        <source>Export to shapefiles</source>
        <translation>Exporter en shapefiles</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="540"/>
        <source>Export failed, nothing was changed: {0}</source>
        <translation>Échec de l'export, rien n'a été modifié : {0}</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="543"/>
        <source>Text longer than {0} bytes was split over continuation fields ({1}, ...).</source>
        <translation>Le texte de plus de {0} octets a été réparti sur des champs de suite ({1}, ...).</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="546"/>
        <source>Some text could not be stored as it was ({0}): NUL characters and lone surrogates were written as \uXXXX, spaces at the ends dropped from shapefiles.</source>
        <translation>Certains textes n’ont pas pu être enregistrés tels quels ({0}) : les caractères NUL et les demi-codets isolés ont été écrits \uXXXX, les espaces aux extrémités retirées des shapefiles.</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="549"/>
        <source>({0} new answer(s), {1} new detection(s); nothing else in the file was changed)</source>
        <translation>({0} nouvelle(s) réponse(s), {1} nouvelle(s) détection(s) ; rien d’autre n’a été modifié dans le fichier)</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="549"/>
        <source>Exported to {0}</source>
        <translation>Exporté vers {0}</translation>
    </message>
    <message>
        <location filename="../plugin/dock.py" line="560"/>
        <source>Restart the model worker</source>
        <translation>Redémarrer le processus de calcul</translation>
    </message>
    <message>
        <location filename="../plugin/export.py" line="120"/>
        <source>Cannot write {file}: {why}; export to a GeoPackage instead.</source>
        <translation>Impossible d’écrire {file} : {why} ; exportez plutôt vers un GeoPackage.</translation>
    </message>
    <message>
        <location filename="../plugin/export.py" line="136"/>
        <source>The export file must end in {ext}: {path}</source>
        <translation>Le fichier d'export doit se terminer par {ext} : {path}</translation>
    </message>
    <message>
        <location filename="../plugin/export.py" line="139"/>
        <source>The folder {folder} does not exist.</source>
        <translation>Le dossier {folder} n'existe pas.</translation>
    </message>
    <message>
        <location filename="../plugin/export.py" line="141"/>
        <source>{path} is a folder, not a file.</source>
        <translation>{path} est un dossier, pas un fichier.</translation>
    </message>
    <message>
        <location filename="../plugin/export.py" line="172"/>
        <source>There is nothing to export yet: ask a question first.</source>
        <translation>Rien à exporter pour l'instant : posez d'abord une question.</translation>
    </message>
    <message>
        <location filename="../plugin/export.py" line="211"/>
        <source>Cannot read {file}; nothing was changed.</source>
        <translation>Impossible de lire {file} ; rien n’a été modifié.</translation>
    </message>
    <message>
        <location filename="../plugin/export.py" line="254"/>
        <source>Could not create {file}: {error}</source>
        <translation>Impossible de créer {file} : {error}</translation>
    </message>
    <message>
        <location filename="../plugin/export.py" line="264"/>
        <source>Could not write to {file}: {error}</source>
        <translation>Impossible d'écrire dans {file} : {error}</translation>
    </message>
    <message>
        <location filename="../plugin/layers.py" line="89"/>
        <source>lines</source>
        <translation>lignes</translation>
    </message>
    <message>
        <location filename="../plugin/layers.py" line="89"/>
        <source>points</source>
        <translation>points</translation>
    </message>
    <message>
        <location filename="../plugin/layers.py" line="89"/>
        <source>polygons</source>
        <translation>polygones</translation>
    </message>
    <message>
        <location filename="../plugin/layers.py" line="90"/>
        <source>{layer} ({family})</source>
        <translation>{layer} ({family})</translation>
    </message>
    <message>
        <location filename="../plugin/layers.py" line="119"/>
        <source>A {layer} feature has no point, line or polygon geometry.</source>
        <translation>Une entité de {layer} n'a pas de géométrie ponctuelle, linéaire ou polygonale.</translation>
    </message>
    <message>
        <location filename="../plugin/layers.py" line="171"/>
        <source>{0}; the results stay in memory layers until you export them</source>
        <translation>{0} ; les résultats restent dans des couches en mémoire jusqu'à leur export</translation>
    </message>
    <message>
        <location filename="../plugin/layers.py" line="176"/>
        <source>EarthGPT-X style</source>
        <translation>Style EarthGPT-X</translation>
    </message>
    <message>
        <location filename="../plugin/plugin_main.py" line="50"/>
        <source>Backend setup...</source>
        <translation>Installation du moteur...</translation>
    </message>
    <message>
        <location filename="../plugin/plugin_main.py" line="50"/>
        <source>Settings...</source>
        <translation>Paramètres...</translation>
    </message>
    <message>
        <location filename="../plugin/plugin_main.py" line="51"/>
        <source>About EarthGPT-X</source>
        <translation>À propos d'EarthGPT-X</translation>
    </message>
    <message>
        <location filename="../plugin/plugin_main.py" line="119"/>
        <source>Version {0}. Models run in a separate worker process; see the README for GPU needs.</source>
        <translation>Version {0}. Les modèles s'exécutent dans un processus de calcul séparé ; voir le README pour les besoins en GPU.</translation>
    </message>
    <message>
        <location filename="../plugin/processing/ask_features.py" line="30"/>
        <source>Ask about features</source>
        <translation>Interroger sur des entités</translation>
    </message>
    <message>
        <location filename="../plugin/processing/ask_features.py" line="33"/>
        <source>Asks the EarthGPT-X model about each feature of a layer drawn over a raster: points, lines (scribbles) and polygons become visual prompts. The output has each feature with its answer; grounded boxes, if any, go to the detections output. Uses the plugin's model settings.</source>
        <translation>Interroge le modèle EarthGPT-X sur chaque entité d’une couche dessinée sur un raster : points, lignes (tracés libres) et polygones deviennent des invites visuelles. La sortie reprend chaque entité avec sa réponse ; les boîtes localisées éventuelles vont dans la sortie des détections. Utilise les réglages de modèle de l’extension.</translation>
    </message>
    <message>
        <location filename="../plugin/processing/ask_features.py" line="42"/>
        <source>Features to ask about</source>
        <translation>Entités à interroger</translation>
    </message>
    <message>
        <location filename="../plugin/processing/ask_features.py" line="44"/>
        <source>Question</source>
        <translation>Question</translation>
    </message>
    <message>
        <location filename="../plugin/processing/ask_features.py" line="47"/>
        <source>Answers</source>
        <translation>Réponses</translation>
    </message>
    <message>
        <location filename="../plugin/processing/ask_features.py" line="48"/>
        <location filename="../plugin/processing/find_objects.py" line="70"/>
        <source>Detections</source>
        <translation>Détections</translation>
    </message>
    <message>
        <location filename="../plugin/processing/ask_features.py" line="66"/>
        <source>The features mix points, lines and polygons, and a shapefile holds one kind: write the answers to a GeoPackage (.gpkg)</source>
        <translation>Les entités mêlent points, lignes et polygones, et un shapefile n’en contient qu’un type : écrivez les réponses dans un GeoPackage (.gpkg)</translation>
    </message>
    <message>
        <location filename="../plugin/processing/ask_features.py" line="83"/>
        <source>feature {0}: no usable geometry, skipped</source>
        <translation>entité {0} : aucune géométrie utilisable, ignorée</translation>
    </message>
    <message>
        <location filename="../plugin/processing/ask_features.py" line="96"/>
        <location filename="../plugin/processing/segment_objects.py" line="111"/>
        <source>feature {0}: {1}</source>
        <translation>entité {0} : {1}</translation>
    </message>
    <message>
        <location filename="../plugin/processing/ask_features.py" line="106"/>
        <source>feature {0}: a point answer is not a box, not written to detections</source>
        <translation>entité {0} : une réponse ponctuelle n’est pas une boîte, non écrite dans les détections</translation>
    </message>
    <message>
        <location filename="../plugin/processing/common.py" line="45"/>
        <source>Model (empty: the plugin's settings)</source>
        <translation>Modèle (vide : réglages de l’extension)</translation>
    </message>
    <message>
        <location filename="../plugin/processing/common.py" line="46"/>
        <source>Maximum new tokens</source>
        <translation>Nombre maximal de nouveaux jetons</translation>
    </message>
    <message>
        <location filename="../plugin/processing/common.py" line="68"/>
        <source>Model: {0} on {1} ({2})</source>
        <translation>Modèle : {0} sur {1} ({2})</translation>
    </message>
    <message>
        <location filename="../plugin/processing/describe_scene.py" line="28"/>
        <source>Describe scene</source>
        <translation>Décrire la scène</translation>
    </message>
    <message>
        <location filename="../plugin/processing/describe_scene.py" line="31"/>
        <source>Reads the whole raster, or the given extent, through its overviews within the chip pixel budget and asks the model for a caption, a scene class or an answer to a question. The output is one polygon, the chip's footprint, with the answer.</source>
        <translation>Lit le raster entier, ou l’emprise donnée, à travers ses aperçus dans la limite du budget de pixels de l’extrait, et demande au modèle une légende, une classe de scène ou la réponse à une question. La sortie est un polygone, l’emprise de l’extrait, avec la réponse.</translation>
    </message>
    <message>
        <location filename="../plugin/processing/describe_scene.py" line="40"/>
        <source>Extent (empty: the whole raster)</source>
        <translation>Emprise (vide : le raster entier)</translation>
    </message>
    <message>
        <location filename="../plugin/processing/describe_scene.py" line="42"/>
        <source>Question or candidate classes</source>
        <translation>Question ou classes candidates</translation>
    </message>
    <message>
        <location filename="../plugin/processing/describe_scene.py" line="45"/>
        <source>Description</source>
        <translation>Description</translation>
    </message>
    <message>
        <location filename="../plugin/processing/find_objects.py" line="34"/>
        <location filename="../plugin/processing/find_objects.py" line="181"/>
        <source>Find objects</source>
        <translation>Trouver des objets</translation>
    </message>
    <message>
        <location filename="../plugin/processing/find_objects.py" line="37"/>
        <source>Finds everything the phrase names (e.g. "ships") over whole rasters or an extent: the area is cut into overlapping tiles read at the chosen ground resolution, the model is asked for boxes on each tile, and boxes found twice across tile borders are merged. Boxes are 4-corner polygons in each raster's CRS; every feature names its raster. A GeoPackage output is written tile by tile, so a run that is stopped or crashes keeps what it answered, and Resume asks only the tiles not answered yet. Questions in flight (a server) and tiles per generate (a local model) come from the plugin's settings unless given here.</source>
        <translation>Trouve tout ce que la phrase nomme (par ex. « navires ») sur des rasters entiers ou une emprise : la zone est découpée en tuiles qui se chevauchent, lues à la résolution au sol choisie, le modèle est interrogé sur les boîtes de chaque tuile, et les boîtes trouvées deux fois de part et d'autre d'une bordure de tuile sont fusionnées. Les boîtes sont des polygones à 4 sommets dans le SCR de chaque raster ; chaque entité nomme son raster. Une sortie GeoPackage est écrite tuile par tuile : une exécution arrêtée ou plantée garde ce qu'elle a répondu, et Reprendre ne demande que les tuiles sans réponse. Les questions en vol (un serveur) et les tuiles par génération (un modèle local) viennent des paramètres de l'extension, sauf si elles sont données ici.</translation>
    </message>
    <message>
        <location filename="../plugin/processing/find_objects.py" line="49"/>
        <source>Rasters</source>
        <translation>Rasters</translation>
    </message>
    <message>
        <location filename="../plugin/processing/find_objects.py" line="50"/>
        <source>What to find</source>
        <translation>Ce qu’il faut trouver</translation>
    </message>
    <message>
        <location filename="../plugin/processing/find_objects.py" line="51"/>
        <source>Extent (empty: the whole rasters)</source>
        <translation>Emprise (vide : les rasters entiers)</translation>
    </message>
    <message>
        <location filename="../plugin/processing/find_objects.py" line="54"/>
        <source>Ground resolution (metres per chip pixel; empty: each raster's own)</source>
        <translation>Résolution au sol (mètres par pixel de vignette ; vide : celle de chaque raster)</translation>
    </message>
    <message>
        <location filename="../plugin/processing/find_objects.py" line="56"/>
        <source>Tile size (pixels)</source>
        <translation>Taille des tuiles (pixels)</translation>
    </message>
    <message>
        <location filename="../plugin/processing/find_objects.py" line="59"/>
        <source>Tile overlap (fraction of a tile)</source>
        <translation>Chevauchement des tuiles (fraction d’une tuile)</translation>
    </message>
    <message>
        <location filename="../plugin/processing/find_objects.py" line="63"/>
        <source>Resume: ask only the tiles an earlier run into this GeoPackage did not answer</source>
        <translation>Reprendre : ne demander que les tuiles auxquelles une exécution précédente dans ce GeoPackage n'a pas répondu</translation>
    </message>
    <message>
        <location filename="../plugin/processing/find_objects.py" line="65"/>
        <source>Questions in flight against a server (0: the settings)</source>
        <translation>Questions en vol vers un serveur (0 : les paramètres)</translation>
    </message>
    <message>
        <location filename="../plugin/processing/find_objects.py" line="66"/>
        <source>Tiles per generate of a local model (0: the settings)</source>
        <translation>Tuiles par génération d'un modèle local (0 : les paramètres)</translation>
    </message>
    <message>
        <location filename="../plugin/processing/find_objects.py" line="73"/>
        <source>Tile answers</source>
        <translation>Réponses par tuile</translation>
    </message>
    <message>
        <location filename="../plugin/processing/find_objects.py" line="117"/>
        <source>{0}: {1} tiles of {2}x{3} pixels</source>
        <translation>{0} : {1} tuiles de {2}x{3} pixels</translation>
    </message>
    <message>
        <location filename="../plugin/processing/find_objects.py" line="120"/>
        <source>{0} raster(s); {1} question(s) in flight, {2} tile(s) per call</source>
        <translation>{0} raster(s) ; {1} question(s) en vol, {2} tuile(s) par appel</translation>
    </message>
    <message>
        <location filename="../plugin/processing/find_objects.py" line="140"/>
        <source>{0}: {1} tiles of {2} answered ({3} resumed, {4} without data); {5} boxes, {6} after merging across tile borders</source>
        <translation>{0} : {1} tuiles sur {2} répondues ({3} reprises, {4} sans données) ; {5} boîtes, {6} après fusion aux bordures des tuiles</translation>
    </message>
    <message>
        <location filename="../plugin/processing/find_objects.py" line="145"/>
        <source>{0} tile answer(s) reached the maximum new tokens and were cut there (kept)</source>
        <translation>{0} réponse(s) de tuile ont atteint le nombre maximal de nouveaux jetons et y ont été coupées (conservées)</translation>
    </message>
    <message>
        <location filename="../plugin/processing/find_objects.py" line="179"/>
        <source>detections</source>
        <translation>détections</translation>
    </message>
    <message>
        <location filename="../plugin/processing/find_objects.py" line="179"/>
        <source>tile answers</source>
        <translation>réponses par tuile</translation>
    </message>
    <message>
        <location filename="../plugin/processing/segment_objects.py" line="32"/>
        <source>Segment objects</source>
        <translation>Segmenter des objets</translation>
    </message>
    <message>
        <location filename="../plugin/processing/segment_objects.py" line="35"/>
        <source>Outlines what each point or polygon of a layer points at on a raster (SAM 2.1 by default: a point, or a region's box with points inside it), or with a SAM 3 segmenter every instance of a phrase. Outlines follow the raster's pixel grid exactly (Simplify 0) and are written in the raster's CRS with their score and ground area in m².</source>
        <translation>Contoure ce que désigne chaque point ou polygone d'une couche sur un raster (SAM 2.1 par défaut : un point, ou la boîte d'une région avec des points à l'intérieur), ou, avec un segmenteur SAM 3, chaque occurrence d'une phrase. Les contours suivent exactement la grille de pixels du raster (Simplifier 0) et sont écrits dans le SCR du raster avec leur score et leur surface au sol en m².</translation>
    </message>
    <message>
        <location filename="../plugin/processing/segment_objects.py" line="46"/>
        <source>Points or polygons to outline</source>
        <translation>Points ou polygones à contourer</translation>
    </message>
    <message>
        <location filename="../plugin/processing/segment_objects.py" line="48"/>
        <source>Phrase to outline (SAM 3)</source>
        <translation>Phrase à contourer (SAM 3)</translation>
    </message>
    <message>
        <location filename="../plugin/processing/segment_objects.py" line="49"/>
        <source>Simplify (chip pixels; 0: exact)</source>
        <translation>Simplifier (pixels de vignette ; 0 : exact)</translation>
    </message>
    <message>
        <location filename="../plugin/processing/segment_objects.py" line="51"/>
        <source>Smallest part kept (chip pixels)</source>
        <translation>Plus petite partie gardée (pixels de vignette)</translation>
    </message>
    <message>
        <location filename="../plugin/processing/segment_objects.py" line="53"/>
        <source>Segmenter (empty: the plugin's settings)</source>
        <translation>Segmenteur (vide : les paramètres de l'extension)</translation>
    </message>
    <message>
        <location filename="../plugin/processing/segment_objects.py" line="57"/>
        <source>Outlines</source>
        <translation>Contours</translation>
    </message>
    <message>
        <location filename="../plugin/processing/segment_objects.py" line="65"/>
        <source>Nothing to outline: give a layer of points or polygons, or a phrase with a SAM 3 segmenter</source>
        <translation>Rien à contourer : donnez une couche de points ou de polygones, ou une phrase avec un segmenteur SAM 3</translation>
    </message>
    <message>
        <location filename="../plugin/processing/segment_objects.py" line="90"/>
        <source>feature {0}: not a point or a polygon, skipped</source>
        <translation>entité {0} : ni un point ni un polygone, ignorée</translation>
    </message>
    <message>
        <location filename="../plugin/processing/segment_objects.py" line="124"/>
        <source>{0} outline(s) written</source>
        <translation>{0} contour(s) écrit(s)</translation>
    </message>
    <message>
        <location filename="../plugin/results.py" line="31"/>
        <source>Result</source>
        <translation>Résultat</translation>
    </message>
    <message>
        <location filename="../plugin/results.py" line="31"/>
        <source>Score</source>
        <translation>Score</translation>
    </message>
    <message>
        <location filename="../plugin/results.py" line="31"/>
        <source>Size</source>
        <translation>Taille</translation>
    </message>
    <message>
        <location filename="../plugin/results.py" line="34"/>
        <source>Copy answer</source>
        <translation>Copier la réponse</translation>
    </message>
    <message>
        <location filename="../plugin/results.py" line="34"/>
        <source>Delete</source>
        <translation>Supprimer</translation>
    </message>
    <message>
        <location filename="../plugin/results.py" line="65"/>
        <source>outline of {0}</source>
        <translation>contour de {0}</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="24"/>
        <source>EarthGPT-X settings</source>
        <translation>Paramètres d'EarthGPT-X</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="27"/>
        <source>Local model (worker process)</source>
        <translation>Modèle local (processus de calcul)</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="28"/>
        <source>OpenAI-compatible server (vLLM, Ollama, llama.cpp)</source>
        <translation>Serveur compatible OpenAI (vLLM, Ollama, llama.cpp)</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="30"/>
        <source>Backend</source>
        <translation>Moteur</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="32"/>
        <source>Model (hub id, folder, or served name)</source>
        <translation>Modèle (identifiant sur le Hub, dossier ou nom servi)</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="35"/>
        <source>Endpoint</source>
        <translation>Point de terminaison</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="39"/>
        <source>Remote model family</source>
        <translation>Famille du modèle distant</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="42"/>
        <source>Endpoint token (authentication database)</source>
        <translation>Jeton du point de terminaison (base de données d'authentification)</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="48"/>
        <source>The longest wait for the server: to connect, for the first piece of the answer and between two pieces</source>
        <translation>L’attente la plus longue pour le serveur : pour se connecter, pour le premier morceau de la réponse et entre deux morceaux</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="50"/>
        <source>Server timeout</source>
        <translation>Délai du serveur</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="54"/>
        <source>Device</source>
        <translation>Périphérique</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="58"/>
        <source>Quantization</source>
        <translation>Quantification</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="59"/>
        <source>Let thinking models think before they answer (slower; thoughts kept apart)</source>
        <translation>Laisser les modèles à raisonnement réfléchir avant de répondre (plus lent ; réflexions tenues à part)</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="61"/>
        <source>Thinking</source>
        <translation>Réflexion</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="65"/>
        <source>Max new tokens</source>
        <translation>Nombre max. de nouveaux jetons</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="70"/>
        <source>Chip pixel budget</source>
        <translation>Budget de pixels de la vignette</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="75"/>
        <source>Context margin (fraction of the prompt)</source>
        <translation>Marge de contexte (fraction de l'invite)</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="79"/>
        <source>Smallest chip side (pixels)</source>
        <translation>Côté minimal de la vignette (pixels)</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="83"/>
        <source>Find objects against a server: tile questions in flight at once (raise it towards what the server batches)</source>
        <translation>Trouver des objets via un serveur : questions de tuile en vol à la fois (augmentez-le vers ce que le serveur regroupe)</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="85"/>
        <source>Questions in flight (server)</source>
        <translation>Questions en vol (serveur)</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="88"/>
        <source>auto (from free memory)</source>
        <translation>auto (selon la mémoire libre)</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="90"/>
        <source>Find objects with a local model: tiles asked in one generate</source>
        <translation>Trouver des objets avec un modèle local : tuiles demandées en une génération</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="91"/>
        <source>Tiles per generate (local)</source>
        <translation>Tuiles par génération (local)</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="93"/>
        <source>The model that draws outlines (SAM 2.1, SAM or SAM 3): a hub id or a folder</source>
        <translation>Le modèle qui trace les contours (SAM 2.1, SAM ou SAM 3) : un identifiant du hub ou un dossier</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="94"/>
        <source>Segmenter (outlines)</source>
        <translation>Segmenteur (contours)</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="98"/>
        <source>Where the results of a project not saved yet are kept (empty: the QGIS profile); a saved project's are in NAME_earthgptx.gpkg beside it</source>
        <translation>Où sont gardés les résultats d'un projet pas encore enregistré (vide : le profil QGIS) ; ceux d'un projet enregistré sont dans NOM_earthgptx.gpkg à côté de lui</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="100"/>
        <source>Session folder</source>
        <translation>Dossier de session</translation>
    </message>
    <message>
        <location filename="../plugin/settings_dialog.py" line="103"/>
        <source>Worker Python</source>
        <translation>Python du processus de calcul</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="75"/>
        <source>EarthGPT-X model backend</source>
        <translation>Moteur de modèle EarthGPT-X</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="93"/>
        <source>This computer</source>
        <translation>Cet ordinateur</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="95"/>
        <source>Looking for an NVIDIA GPU...</source>
        <translation>Recherche d'un GPU NVIDIA...</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="99"/>
        <source>GPU:</source>
        <translation>GPU :</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="100"/>
        <source>PyTorch build:</source>
        <translation>Variante de PyTorch :</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="103"/>
        <source>Worker environment</source>
        <translation>Environnement de calcul</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="106"/>
        <source>Folder of the worker's Python environment; it must be outside the plugin folder, which a plugin update replaces.</source>
        <translation>Dossier de l'environnement Python du processus de calcul ; il doit se trouver hors du dossier de l'extension, qu'une mise à jour de l'extension remplace.</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="108"/>
        <location filename="../plugin/setup/dialog.py" line="117"/>
        <source>Browse...</source>
        <translation>Parcourir...</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="113"/>
        <source>Folder:</source>
        <translation>Dossier :</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="115"/>
        <source>The Python the environment is made with (3.10 or newer; not QGIS's own Python on Windows and macOS).</source>
        <translation>Le Python avec lequel l'environnement est créé (3.10 ou plus récent ; pas le Python de QGIS sous Windows et macOS).</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="122"/>
        <source>Base Python:</source>
        <translation>Python de base :</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="125"/>
        <source>Worker Python:</source>
        <translation>Python du processus de calcul :</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="130"/>
        <source>Create / update</source>
        <translation>Créer / mettre à jour</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="131"/>
        <source>Create the environment, or update an existing one, and install PyTorch and the worker's packages (downloads several GB).</source>
        <translation>Crée l'environnement, ou met à jour un environnement existant, et installe PyTorch et les paquets du processus de calcul (télécharge plusieurs Go).</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="134"/>
        <location filename="../plugin/setup/dialog.py" line="177"/>
        <source>Diagnostics</source>
        <translation>Diagnostic</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="135"/>
        <source>Report what the worker environment holds and which GPU it can use.</source>
        <translation>Indique ce que contient l'environnement de calcul et quel GPU il peut utiliser.</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="137"/>
        <source>Cancel</source>
        <translation>Annuler</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="150"/>
        <source>Ready.</source>
        <translation>Prêt.</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="160"/>
        <source>Log</source>
        <translation>Journal</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="168"/>
        <source>Press Diagnostics to see what the worker environment holds.</source>
        <translation>Cliquez sur Diagnostic pour voir ce que contient l'environnement de calcul.</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="172"/>
        <source>Copy</source>
        <translation>Copier</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="173"/>
        <source>Copy the report to the clipboard (for a bug report).</source>
        <translation>Copie le rapport dans le presse-papiers (pour un rapport de bogue).</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="209"/>
        <source>(choose a folder)</source>
        <translation>(choisissez un dossier)</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="213"/>
        <source>{0} (not created yet)</source>
        <translation>{0} (pas encore créé)</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="285"/>
        <source>nvidia-smi did not answer: no NVIDIA GPU assumed.</source>
        <translation>nvidia-smi n'a pas répondu : on suppose qu'il n'y a pas de GPU NVIDIA.</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="286"/>
        <source>No NVIDIA GPU found (no working nvidia-smi).</source>
        <translation>Aucun GPU NVIDIA trouvé (pas de nvidia-smi fonctionnel).</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="289"/>
        <source>{0} (NVIDIA driver {1})</source>
        <translation>{0} (pilote NVIDIA {1})</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="292"/>
        <source>CPU build</source>
        <translation>variante CPU</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="292"/>
        <source>PyTorch from PyPI</source>
        <translation>PyTorch depuis PyPI</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="293"/>
        <source>worker device: {0}</source>
        <translation>périphérique de calcul : {0}</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="303"/>
        <source>Folder of the worker environment</source>
        <translation>Dossier de l'environnement de calcul</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="310"/>
        <source>Base Python</source>
        <translation>Python de base</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="322"/>
        <source>Choose an absolute folder for the worker environment.</source>
        <translation>Choisissez un chemin de dossier absolu pour l'environnement de calcul.</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="325"/>
        <source>The worker environment must be outside the plugin folder {0}, which a plugin update replaces: choose another folder.</source>
        <translation>L'environnement de calcul doit se trouver hors du dossier de l'extension {0}, qu'une mise à jour de l'extension remplace : choisissez un autre dossier.</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="349"/>
        <source>No worker environment in {0} yet: press Create / update first.</source>
        <translation>Pas encore d'environnement de calcul dans {0} : cliquez d'abord sur Créer / mettre à jour.</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="363"/>
        <source>Cancelling...</source>
        <translation>Annulation...</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="368"/>
        <source>Diagnostics report copied to the clipboard.</source>
        <translation>Rapport de diagnostic copié dans le presse-papiers.</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="374"/>
        <source>Step {0} of {1}</source>
        <translation>Étape {0} sur {1}</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="375"/>
        <source>Step {0} of {1}: {2}...</source>
        <translation>Étape {0} sur {1} : {2}...</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="382"/>
        <source>Step {0} of {1}: {2}</source>
        <translation>Étape {0} sur {1} : {2}</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="401"/>
        <source>The worker environment is ready: {0}</source>
        <translation>L'environnement de calcul est prêt : {0}</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="404"/>
        <source>Diagnostics finished.</source>
        <translation>Diagnostic terminé.</translation>
    </message>
    <message>
        <location filename="../plugin/setup/dialog.py" line="407"/>
        <source>Run Create / update again to finish the environment.</source>
        <translation>Relancez Créer / mettre à jour pour terminer l'environnement.</translation>
    </message>
    <message>
        <location filename="../plugin/setup/plan.py" line="124"/>
        <source>Run diagnostics</source>
        <translation>Lancer le diagnostic</translation>
    </message>
    <message>
        <location filename="../plugin/setup/plan.py" line="151"/>
        <source>Check the base Python</source>
        <translation>Vérifier le Python de base</translation>
    </message>
    <message>
        <location filename="../plugin/setup/plan.py" line="153"/>
        <source>Choose another base Python.</source>
        <translation>Choisissez un autre Python de base.</translation>
    </message>
    <message>
        <location filename="../plugin/setup/plan.py" line="154"/>
        <source>Create the virtual environment</source>
        <translation>Créer l'environnement virtuel</translation>
    </message>
    <message>
        <location filename="../plugin/setup/plan.py" line="156"/>
        <source>On Debian and Ubuntu, install the python3-venv package (sudo apt install python3-venv).</source>
        <translation>Sous Debian et Ubuntu, installez le paquet python3-venv (sudo apt install python3-venv).</translation>
    </message>
    <message>
        <location filename="../plugin/setup/plan.py" line="158"/>
        <source>pip's message is at the end of the log; the most common cause is the network (internet connection, proxy). Run Create / update again once fixed: finished steps are then quick.</source>
        <translation>Le message de pip se trouve à la fin du journal ; la cause la plus fréquente est le réseau (connexion Internet, proxy). Relancez Créer / mettre à jour une fois le problème corrigé : les étapes déjà terminées seront alors rapides.</translation>
    </message>
    <message>
        <location filename="../plugin/setup/plan.py" line="161"/>
        <source>Upgrade pip</source>
        <translation>Mettre à jour pip</translation>
    </message>
    <message>
        <location filename="../plugin/setup/plan.py" line="164"/>
        <source>Install PyTorch and torchvision (several GB)</source>
        <translation>Installer PyTorch et torchvision (plusieurs Go)</translation>
    </message>
    <message>
        <location filename="../plugin/setup/plan.py" line="166"/>
        <source>Install the worker packages</source>
        <translation>Installer les paquets du processus de calcul</translation>
    </message>
    <message>
        <location filename="../plugin/setup/runner.py" line="64"/>
        <source>Nothing to do.</source>
        <translation>Rien à faire.</translation>
    </message>
    <message>
        <location filename="../plugin/setup/runner.py" line="83"/>
        <source>step {0} of {1} ({2})</source>
        <translation>l'étape {0} sur {1} ({2})</translation>
    </message>
    <message>
        <location filename="../plugin/setup/runner.py" line="89"/>
        <source>All {0} steps finished.</source>
        <translation>Les {0} étapes sont terminées.</translation>
    </message>
    <message>
        <location filename="../plugin/setup/runner.py" line="97"/>
        <source>Failed at {0}: cannot create the folder {1}: {2}.</source>
        <translation>Échec à {0} : impossible de créer le dossier {1} : {2}.</translation>
    </message>
    <message>
        <location filename="../plugin/setup/runner.py" line="134"/>
        <source>Cancelled at {0}.</source>
        <translation>Annulé à {0}.</translation>
    </message>
    <message>
        <location filename="../plugin/setup/runner.py" line="136"/>
        <source>Failed at {0}: the process crashed.</source>
        <translation>Échec à {0} : le processus s'est arrêté brutalement.</translation>
    </message>
    <message>
        <location filename="../plugin/setup/runner.py" line="138"/>
        <source>Failed at {0}: exit status {1}.</source>
        <translation>Échec à {0} : code de sortie {1}.</translation>
    </message>
    <message>
        <location filename="../plugin/setup/runner.py" line="148"/>
        <source>Failed at {0}: {1} could not be started ({2}).</source>
        <translation>Échec à {0} : impossible de lancer {1} ({2}).</translation>
    </message>
    <message>
        <location filename="../plugin/setup/torch_choice.py" line="181"/>
        <source>NVIDIA driver {driver} supports CUDA {cuda}: PyTorch's {build} build, for {gpu}.</source>
        <translation>Le pilote NVIDIA {driver} prend en charge CUDA {cuda} : variante {build} de PyTorch, pour {gpu}.</translation>
    </message>
    <message>
        <location filename="../plugin/setup/torch_choice.py" line="183"/>
        <source>NVIDIA driver {driver} is older than the {minimum} that CUDA {cuda} asks for, but runs CUDA 12 builds through minor-version compatibility: PyTorch's {build} build, for {gpu}. Updating the driver is recommended.</source>
        <translation>Le pilote NVIDIA {driver} est antérieur à la version {minimum} qu'exige CUDA {cuda}, mais il exécute les variantes CUDA 12 grâce à la compatibilité entre versions mineures : variante {build} de PyTorch, pour {gpu}. Il est recommandé de mettre à jour le pilote.</translation>
    </message>
    <message>
        <location filename="../plugin/setup/torch_choice.py" line="187"/>
        <source>No NVIDIA driver found: PyTorch's CPU build. Answers will be slow on the CPU.</source>
        <translation>Aucun pilote NVIDIA trouvé : variante CPU de PyTorch. Les réponses seront lentes sur le CPU.</translation>
    </message>
    <message>
        <location filename="../plugin/setup/torch_choice.py" line="189"/>
        <source>NVIDIA driver {driver} is too old for the CUDA builds of PyTorch {torch}: PyTorch's CPU build. Update the driver to {minimum} or newer to use {gpu}.</source>
        <translation>Le pilote NVIDIA {driver} est trop ancien pour les variantes CUDA de PyTorch {torch} : variante CPU de PyTorch. Mettez à jour le pilote vers la version {minimum} ou plus récente pour utiliser {gpu}.</translation>
    </message>
    <message>
        <location filename="../plugin/setup/torch_choice.py" line="192"/>
        <source>The CUDA builds of PyTorch {torch} have no kernels for {gpu}: PyTorch's CPU build.</source>
        <translation>Les variantes CUDA de PyTorch {torch} n'ont pas de noyaux pour {gpu} : variante CPU de PyTorch.</translation>
    </message>
    <message>
        <location filename="../plugin/setup/torch_choice.py" line="194"/>
        <source>macOS on Apple silicon: PyTorch from PyPI, which uses the GPU through Metal (MPS).</source>
        <translation>macOS sur puce Apple : PyTorch depuis PyPI, qui utilise le GPU via Metal (MPS).</translation>
    </message>
    <message>
        <location filename="../plugin/setup/torch_choice.py" line="196"/>
        <source>macOS on an Intel Mac: PyTorch {torch} publishes no build for it, so the worker environment cannot be made here. Use a remote engine instead.</source>
        <translation>macOS sur un Mac Intel : PyTorch {torch} ne publie aucune variante pour cette plateforme, l'environnement de calcul ne peut donc pas être créé ici. Utilisez plutôt un moteur distant.</translation>
    </message>
    <message>
        <location filename="../plugin/tasks.py" line="60"/>
        <source>EarthGPT-X: loading the model</source>
        <translation>EarthGPT-X : chargement du modèle</translation>
    </message>
    <message>
        <location filename="../plugin/tasks.py" line="124"/>
        <source>Reading the chip...</source>
        <translation>Lecture de l’extrait...</translation>
    </message>
    <message>
        <location filename="../plugin/tasks.py" line="128"/>
        <source>Outlining...</source>
        <translation>Contournage...</translation>
    </message>
    <message>
        <location filename="../plugin/tasks.py" line="137"/>
        <source>Asking the model...</source>
        <translation>Interrogation du modèle...</translation>
    </message>
    <message>
        <location filename="../plugin/tasks.py" line="142"/>
        <source>Outlining {0} region(s)...</source>
        <translation>Contournage de {0} région(s)...</translation>
    </message>
    <message>
        <location filename="../plugin/worker_pool.py" line="53"/>
        <source>The model environment is not set up ({0} does not exist): run Raster &gt; EarthGPT-X &gt; Backend setup..., or set the worker Python in the settings</source>
        <translation>L’environnement du modèle n’est pas installé ({0} n’existe pas) : lancez Raster &gt; EarthGPT-X &gt; Installation du moteur..., ou indiquez le Python du processus du modèle dans les réglages</translation>
    </message>
    <message>
        <location filename="../plugin/worker_pool.py" line="60"/>
        <source>Starting the model worker...</source>
        <translation>Démarrage du processus du modèle...</translation>
    </message>
    <message>
        <source>Cannot write in the folder {folder}: {error}</source>
        <translation type="vanished">Impossible d'écrire dans le dossier {folder} : {error}</translation>
    </message>
    <message>
        <source>Could not replace {file}: {error}</source>
        <translation type="vanished">Impossible de remplacer {file} : {error}</translation>
    </message>
    <message>
        <source>Finds everything the phrase names (e.g. "ships") over the whole raster or an extent: the area is cut into overlapping tiles read at the chosen resolution, the model is asked for boxes on each tile, and boxes found twice across tile borders are merged. Boxes are 4-corner polygons in the raster's CRS.</source>
        <translation type="vanished">Trouve tout ce que désigne l’expression (par ex. « navires ») sur le raster entier ou une emprise : la zone est découpée en tuiles qui se chevauchent, lues à la résolution choisie, le modèle donne des boîtes pour chaque tuile, et les boîtes trouvées deux fois de part et d’autre d’une limite de tuile sont fusionnées. Les boîtes sont des polygones à 4 sommets dans le SCR du raster.</translation>
    </message>
    <message>
        <source>Resolution (raster CRS units per pixel; empty: full resolution)</source>
        <translation type="vanished">Résolution (unités du SCR du raster par pixel ; vide : pleine résolution)</translation>
    </message>
    <message>
        <source>{0} boxes found, {1} after merging across tile borders</source>
        <translation type="vanished">{0} boîtes trouvées, {1} après fusion aux limites des tuiles</translation>
    </message>
    <message>
        <source>{0} tiles of {1}x{2} pixels</source>
        <translation type="vanished">{0} tuiles de {1}x{2} pixels</translation>
    </message>
</context>
</TS>
